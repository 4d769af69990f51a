//! A Diameter handler whose answers are counted (`/metrics`, `rcslab_diameter_requests_total`)
//! by command code and Result-Code (RFC 6733 §7.1, TS 29.229 §6.2); the counters live in
//! `crate::metrics`, which knows nothing of Diameter messages.

use std::sync::Arc;

use crate::diameter::codec::Message;
use crate::diameter::peer::{BoxFuture, DiameterHandler, PeerInfo};
use crate::metrics::DiameterAnswered;

/// Wraps `handler` so each request it answers is counted on `counter`.
pub fn metered(
    counter: DiameterAnswered,
    handler: Arc<dyn DiameterHandler>,
) -> Arc<dyn DiameterHandler> {
    Arc::new(MeteredCx {
        inner: handler,
        counter,
    })
}

/// A Diameter handler whose answers are counted by command and result code.
struct MeteredCx {
    inner: Arc<dyn DiameterHandler>,
    counter: DiameterAnswered,
}

impl DiameterHandler for MeteredCx {
    fn handle(&self, from: PeerInfo, request: Message) -> BoxFuture<'static, Message> {
        let command = request.command_code;
        let counter = self.counter.clone();
        let answer = self.inner.handle(from, request);
        Box::pin(async move {
            let a = answer.await;
            counter.count(command, a.result_code().unwrap_or(0));
            a
        })
    }
}
