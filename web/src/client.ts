// The generated loket.v1 clients over gRPC-Web, to the loket that served the page: the one transport setup the
// widget and the agent console share. No hand-written framing, and no other way to talk to loket. Each page
// names its own service, so the widget's bundle carries no AgentService code.
import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";

/// A client of `service` that sends `authorization: Bearer <credential()>` with every call (read per call, so a
/// credential that changes, such as a conversation token replacing the widget key, is picked up).
export function client<S extends DescService>(service: S, credential: () => string): Client<S> {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${credential()}`);
    return next(request);
  };
  const transport = createGrpcWebTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [bearer] });
  return createClient(service, transport);
}
