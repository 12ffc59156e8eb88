//! `Mutation`: the write entry points, by what they write. Each one loads its target
//! (NOT_FOUND across tenants), asks the policy (FORBIDDEN, explained), validates its input
//! (BAD_USER_INPUT naming the field), and only then writes — through one unit of work
//! (`domain::write`), so a failure leaves nothing half-written and a success is announced
//! with its audit events, cache changes and live events together.

mod course;
mod invitation;
mod membership;
mod organization;
mod role;
mod track;

use async_graphql::{MaybeUndefined, MergedObject};

use crate::error::{AppError, AppResult};

pub use course::{CreateCourseInput, UpdateCourseInput};
pub use invitation::InviteMemberInput;
pub use membership::AddMemberInput;
pub use organization::{CreateOrganizationInput, UpdateOrganizationInput};
pub use track::{CreateTrackInput, UpdateTrackInput};

// The root `Mutation`, merged from each concern's (a doc comment would become its description).
#[derive(MergedObject, Default)]
pub struct Mutation(
    organization::OrganizationMutation,
    membership::MembershipMutation,
    course::CourseMutation,
    track::TrackMutation,
    invitation::InvitationMutation,
    role::RoleMutation,
);

/// A value that may be left out but not set to null.
fn not_null<T>(field: &str, v: MaybeUndefined<T>) -> AppResult<Option<T>> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(AppError::bad_input(field, format!("`{field}` cannot be null"))),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}
