/** Building rejections with the context of where in the input they happened. */
import type { Rejection, RejectionReason, SignalSource } from './model';

/** Where an item sits in the input and how it arrived. */
export interface ItemContext {
  source: SignalSource;
  path: string;
}

export function rejection(
  ctx: ItemContext,
  reason: RejectionReason,
  message: string,
  about: { eventId?: string; eventType?: string; operationName?: string } = {},
): Rejection {
  const out: Rejection = { kind: 'rejection', reason, message, source: ctx.source, path: ctx.path };
  if (about.eventId !== undefined) out.eventId = about.eventId;
  if (about.eventType !== undefined) out.eventType = about.eventType;
  if (about.operationName !== undefined) out.operationName = about.operationName;
  return out;
}

export function isRejection(value: { kind: string }): value is Rejection {
  return value.kind === 'rejection';
}
