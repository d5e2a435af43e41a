// The generated loket.v1 clients over gRPC-Web, to the loket that served the page. No hand-written framing.
import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ChatService } from "./gen/loket/v1/chat_pb.js";

/// A ChatService client that sends `authorization: Bearer <credential()>` with every call.
export function chatClient(credential: () => string): Client<typeof ChatService> {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${credential()}`);
    return next(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: location.origin,
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return createClient(ChatService, transport);
}
