//! The public addresses a service hands out (an invitation's link, a
//! nudge's tracking, unsubscribe and delivery-report URLs) without knowing
//! any route: the web layer, which owns the routes, builds them and passes
//! them down through these traits.

/// The URLs a nudge message carries; composing a message (a rule in core)
/// takes them, and the sender hands them to the store's step and retry
/// claims.
pub use bos_core::nudge::MessageLinks;

/// Builds the public URLs services put in what they send.
pub trait Links: Send + Sync {
    /// The page where the invitation with this secret token is accepted.
    fn invitation(&self, token: &str) -> String;
}
