-- ListHandoffs pages newest first by (created_at, id), each page starting after the previous page's last key:
-- without this index every page sorts the whole table.
CREATE INDEX handoffs_by_creation ON handoffs (created_at DESC, id DESC);
