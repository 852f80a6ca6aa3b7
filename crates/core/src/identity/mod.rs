//! Identity resolution rules: identifier kinds and their
//! normalization, per-organization identity rules, the streaming merge
//! planner (one event against the profiles its identifiers point to), and
//! the batch resolution engine (a whole file of rows into a partition).
//!
//! All of it is pure: the store looks identifiers up and applies the plan;
//! these modules decide.

pub mod batch;
pub mod import;
pub mod kind;
pub mod normalize;
mod phone_fast;
pub mod phone_search;
pub mod plan;
pub mod rules;
pub mod table;
pub mod traits;

pub use kind::{Identifier, IdentifierKind};
pub use normalize::{normalize, normalize_into};
pub use phone_search::{phone_search, PhoneSearch};
pub use plan::{plan, Decision, DropReason, Dropped, Plan, PlanError, ProfileView};
pub use rules::{IdentityRules, KindRule};
pub use traits::{custom_traits, TraitProblem};
