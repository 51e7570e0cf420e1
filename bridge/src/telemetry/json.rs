//! JSON log lines with the OpenTelemetry ids of the current span, so logs and traces join.

use std::fmt::Write as _;

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// Wraps the standard JSON format and appends `"trace_id"` and `"span_id"` to each object.
pub(super) struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.lookup_current().and_then(|span| {
            tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            })
        });
        if let Some(context) = ids {
            let span = context.span();
            let ids = span.span_context();
            if ids.is_valid() && line.ends_with("}\n") {
                line.truncate(line.len() - 2);
                writeln!(
                    line,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
                    ids.trace_id(),
                    ids.span_id()
                )?;
            }
        }
        writer.write_str(&line)
    }
}
