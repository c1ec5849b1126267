// Flushes buffered spans before the process exits (graceful shutdown): the
// batch processor otherwise sends only every OTEL_BSP_SCHEDULE_DELAY (5 s), and
// the last requests' spans would be lost. A no-op when tracing is off.
import { trace, ProxyTracerProvider } from '@opentelemetry/api';

export async function flushTraces(timeoutMs = 2000): Promise<void> {
  const global = trace.getTracerProvider();
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  // The SDK's provider has forceFlush(); the API's no-op provider does not.
  const flush = (provider as { forceFlush?: () => Promise<void> }).forceFlush;
  if (!flush) return;
  await Promise.race([flush.call(provider).catch(() => {}), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}
