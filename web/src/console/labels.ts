// How the console names the wire's enums and times, in the agent's language.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Channel, HandoffReason, SupportTier } from "../gen/loket/v1/chat_pb.js";
import type { Key, Texts } from "../texts.js";

export function reason(texts: Texts, value: HandoffReason): string {
  const name = HandoffReason[value] ?? "UNSPECIFIED";
  return value === HandoffReason.UNSPECIFIED ? "" : texts.t(`reason_${name.toLowerCase()}` as Key);
}

export function channel(texts: Texts, value: Channel): string {
  const name = Channel[value === Channel.UNSPECIFIED ? Channel.CHAT : value];
  return texts.t(`channel_${name.toLowerCase()}` as Key);
}

export function tier(texts: Texts, value: SupportTier): string {
  const name = SupportTier[value === SupportTier.UNSPECIFIED ? SupportTier.STANDARD : value];
  return texts.t(`tier_${name.toLowerCase()}` as Key);
}

export function millis(time: Timestamp | undefined): number {
  return time === undefined ? Date.now() : timestampDate(time).getTime();
}

/// "42 s", "7 min", "3 h": how long since `since`.
export function waited(texts: Texts, since: number, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - since) / 1000));
  if (seconds < 60) return texts.t("console_seconds", { n: seconds });
  if (seconds < 3600) return texts.t("console_minutes", { n: Math.floor(seconds / 60) });
  return texts.t("console_hours", { n: Math.floor(seconds / 3600) });
}

export function moment(texts: Texts, time: Timestamp | undefined): string {
  return new Date(millis(time)).toLocaleString(texts.language, { dateStyle: "medium", timeStyle: "short" });
}
