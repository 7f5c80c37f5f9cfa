//! Deciding parsed requests against a loaded bundle.

use crate::json::{DecisionJson, Request};
use sluice_runtime::{Bundle, PeerClass, RequestError, Scratch, Trace};

/// A bundle with reusable scratch space and peer classification.
pub struct Decider<'b, 'a> {
    bundle: &'b Bundle<'a>,
    scratch: Scratch,
    class: PeerClass,
}

impl<'b, 'a> Decider<'b, 'a> {
    /// Scratch space and a peer class sized for `bundle`.
    pub fn new(bundle: &'b Bundle<'a>) -> Self {
        Decider {
            bundle,
            scratch: bundle.create_scratch(),
            class: bundle.create_peer_class(),
        }
    }

    /// Decides one request, reporting each step to `trace`. Inbound requests
    /// classify their peer first.
    pub fn decide(
        &mut self,
        request: &Request,
        trace: &mut dyn Trace,
    ) -> Result<DecisionJson, RequestError<'b>> {
        let decision = match request {
            Request::Inbound(r) => {
                self.bundle.classify(&r.as_peer(), &mut self.class);
                self.bundle.decide_inbound_traced(
                    &r.as_inbound(),
                    &self.class,
                    &mut self.scratch,
                    trace,
                )?
            }
            Request::Outbound(r) => {
                self.bundle
                    .decide_outbound_traced(&r.as_outbound(), &mut self.scratch, trace)?
            }
        };
        Ok(DecisionJson::from_runtime(&decision))
    }
}
