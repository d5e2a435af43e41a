// The fields a refusal names. Every INVALID_ARGUMENT from loket carries a google.rpc.BadRequest listing each
// offending field by its path in the request; the pages show each violation at that field, not by parsing the
// message text.
import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";

/// The violations of an INVALID_ARGUMENT (none for any other failure), each field path without `prefix`.
export function violations(error: unknown, prefix = ""): { field: string; description: string }[] {
  return ConnectError.from(error)
    .findDetails(BadRequestSchema)
    .flatMap((details) => details.fieldViolations)
    .map((v) => ({
      field: prefix !== "" && v.field.startsWith(prefix) ? v.field.slice(prefix.length) : v.field,
      description: v.description,
    }));
}
