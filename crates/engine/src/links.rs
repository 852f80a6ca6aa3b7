//! The public addresses a service hands out (an invitation's link) without
//! knowing any route: the web layer, which owns the routes, builds them
//! and passes them down through this trait.

/// Builds the public URLs services put in what they send.
pub trait Links: Send + Sync {
    /// The page where the invitation with this secret token is accepted.
    fn invitation(&self, token: &str) -> String;
}
