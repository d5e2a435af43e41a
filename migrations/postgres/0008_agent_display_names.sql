-- The name an agent is shown to customers as (the agent console's messages carry it), set per agent key by an
-- administrator; empty: the customer sees "agent". Only agent keys have one.
ALTER TABLE api_keys ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
