// How the pages turn a failed call into words, and follow a server stream across dropped connections: one
// helper for the widget's WatchConversation and the console's WatchQueue and WatchHandoff.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Key, Texts } from "./texts.js";

/// The failure in the page's language, with loket's own precise message after it.
export function describe(error: unknown, texts: Texts): string {
  const failure = ConnectError.from(error);
  const known: Partial<Record<Code, Key>> = {
    [Code.Unauthenticated]: "error_unauthenticated",
    [Code.PermissionDenied]: "error_permission_denied",
    [Code.ResourceExhausted]: "error_resource_exhausted",
    [Code.Unavailable]: "error_unavailable",
    [Code.InvalidArgument]: "error_invalid_argument",
    [Code.FailedPrecondition]: "error_failed_precondition",
    [Code.NotFound]: "error_not_found",
  };
  const summary = texts.t(known[failure.code] ?? "error_other");
  return failure.rawMessage === "" ? summary : `${summary} (${failure.rawMessage})`;
}

export function codeOf(error: unknown): Code {
  return ConnectError.from(error).code;
}

/// Whether a call that failed with `code` is worth trying again: the connection or the server had trouble. Any
/// other code is loket's considered answer (a refusal, an expired credential, bad input) and stays.
export function retryable(code: Code): boolean {
  return [Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Aborted].includes(code);
}

/// What `follow` does besides reading.
export interface Following<T> {
  /// Each item received.
  onItem(item: T): void;
  /// The connection broke and will be tried again (a reason to say "reconnecting").
  onRetry(error: ConnectError): void;
  /// Ends the following when aborted (another hand-off opened, the agent signed out).
  signal?: AbortSignal;
}

/// Reads the stream `open` makes until it ends (resolves with nothing), fails for good or is aborted (resolves with
/// the error), opening it again after a failure worth retrying with a growing pause (0.5 s up to 5 s, back to
/// 0.5 s once items arrive). `open` is called anew each time, so it resumes from wherever the caller has got to.
export async function follow<T>(open: () => AsyncIterable<T>, how: Following<T>): Promise<ConnectError | undefined> {
  let pause = 500;
  for (;;) {
    try {
      for await (const item of open()) {
        pause = 500;
        how.onItem(item);
      }
      return undefined;
    } catch (error) {
      const failure = ConnectError.from(error);
      if (how.signal?.aborted || !retryable(failure.code)) return failure;
      how.onRetry(failure);
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 5000);
    }
  }
}
