//! The database's checks — user, organization, membership, active organization — from what
//! provisioning itself reads (`provision::existing`, the pending invitations, the token's
//! organization), its [`plan`](crate::auth::provision::plan) for this identity, and the
//! one active-organization rule (`auth::active_org::choose`). Read only.

use chrono::Utc;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use uuid::Uuid;

use super::{Check, Doctor, MembershipReport, TokenGrantReport, ViewerReport};
use crate::{
    auth::{
        Identity, Viewer,
        active_org::{self, Choice},
        cache::Found,
        provision::{
            self, accepted_email, find_org,
            plan::{InvitationEffect, Invitations, MembershipStep, OrganizationStep, Plan},
        },
        viewer::{EmailClaim, MembershipRecord, MembershipRow, UserRecord},
    },
    authz::{
        AccessReason, Decision, Role,
        grants::GrantSet,
        roles::{Policy, RoleGrants},
    },
    domain::invitations,
};

/// The viewer the server would build, and its report.
pub(super) struct Seen {
    /// None when the request would be refused (a header) or the database is unreadable.
    pub viewer: Option<Viewer>,
    pub report: Option<ViewerReport>,
}

const REMOVED_HINT: &str =
    "an ADMIN of the organization brings them back with inviteMember (accepted on their next request) or addMember";

impl Doctor<'_> {
    /// user, organization, membership, active_organization — and the viewer they make.
    pub(super) async fn viewer_checks(
        &self,
        identity: &Identity,
        header: Option<&str>,
        token_ok: bool,
        checks: &mut Vec<Check>,
    ) -> Seen {
        let would = if token_ok { "" } else { "(were the token accepted) " };
        let Some((found, pending, org_row)) = self.read(identity).await else {
            checks.push(Check::fail(
                "user",
                "DATABASE_UNAVAILABLE",
                "the database cannot be read",
                "check COURSEGRAPH_DATABASE_URL, and that `coursegraph migrate` has run",
            ));
            for name in ["organization", "membership", "active_organization"] {
                checks.push(Check::skip(name, "the database cannot be read"));
            }
            return Seen { viewer: None, report: None };
        };
        let plan = provision::plan::plan(
            identity,
            found.as_ref(),
            identity.organization.as_ref().map(|_| org_row.as_ref().map(|o| o.id)),
            &Invitations::Known(pending),
            &self.plan_settings(),
        );
        checks.push(user_check(identity, found.as_ref().map(|f| &f.user), would));
        checks.push(organization_check(identity, &plan, org_row.as_ref(), would));
        let existing = found.as_ref().map(|f| f.memberships.clone()).unwrap_or_default();
        checks.push(self.membership_check(identity, &plan, &existing, would));
        let (memberships, sources) = self.planned(identity, &plan, existing, org_row).await;
        let user = found.map(|f| f.user);
        let mut viewer = Viewer {
            user: user.clone().unwrap_or_else(|| new_user(identity)),
            memberships,
            active_organization: None,
            removed_from: None,
            platform_admin: identity.platform_admin,
            email: EmailClaim::from_identity(identity.email.as_deref(), identity.email_verified),
            policy: self.config.auth.policy.clone(),
            token_grants: None,
        };
        let (policy, source) = (&self.config.auth.policy, self.config.auth.role_source);
        viewer.token_grants = provision::token_grants(policy, source, identity, &viewer.memberships);
        let token_org = identity.organization.as_ref().map(|o| o.external_id.as_str());
        let choice = active_org::choose(&viewer.memberships, viewer.platform_admin, token_org, header);
        let refused = choice.is_err();
        let (check, active) = self.active_check(&viewer, choice, header, token_org).await;
        checks.push(check);
        match active {
            Ok(a) => viewer.active_organization = a,
            Err(removed) => viewer.removed_from = Some(removed),
        }
        let report = report(&viewer, &plan, user.map(|u| u.id), sources, !token_ok);
        // A request refused at the header has no viewer to evaluate fields for.
        Seen { viewer: (!refused).then_some(viewer), report: Some(report) }
    }

    /// What provisioning reads: the user with every membership, the invitations it would
    /// accept, and the token's organization. None when the database cannot be read.
    async fn read(
        &self,
        identity: &Identity,
    ) -> Option<(Option<Found>, Vec<(Uuid, Uuid, Role)>, Option<entity::organization::Model>)> {
        let conn = self.conn?;
        let found = match provision::existing(conn, &self.config.auth.policy, identity).await {
            Ok(f) => f.map(|(user, memberships)| Found { user, memberships, pending_invitations: false }),
            Err(e) => {
                tracing::warn!(error = e.message(), "access doctor: the database cannot be read");
                return None;
            }
        };
        let pending = match accepted_email(identity, self.config.invitations.auto_accept) {
            Some(email) => invitations::pending_for(conn, &email, Utc::now()).await.ok()?,
            None => Vec::new(),
        };
        let org_row = match &identity.organization {
            Some(claim) => entity::organization::Entity::find()
                .filter(entity::organization::Column::ExternalId.eq(claim.external_id.as_str()))
                .one(conn)
                .await
                .ok()?,
            None => None,
        };
        Some((found, pending.iter().map(|i| (i.id, i.organization_id, i.role)).collect(), org_row))
    }

    fn membership_check(&self, identity: &Identity, plan: &Plan, existing: &[MembershipRecord], would: &str) -> Check {
        let invited = plan.invitations.iter().any(|i| {
            i.effect != InvitationEffect::Keeps && Some(i.organization_id) == organization_id(&plan.organization)
        });
        match &plan.membership {
            MembershipStep::NotNamed => {
                let active = existing.iter().filter(|m| m.is_active).count()
                    + plan.invitations.iter().filter(|i| i.effect != InvitationEffect::Keeps).count();
                if active > 0 {
                    Check::pass("membership", format!("{active} active membership(s) in the database"))
                } else {
                    Check::warn(
                        "membership",
                        "no active membership: every organization's data is NOT_A_MEMBER",
                        "an ADMIN adds them with addMember or inviteMember, or the token names the organization \
                         (COURSEGRAPH_CLAIM_ORG)",
                    )
                    .with_reason(AccessReason::NotAMember.as_str())
                }
            }
            MembershipStep::Create { role } => Check::pass(
                "membership",
                format!("{would}none yet: the first request creates one as {}", role.as_str()),
            ),
            MembershipStep::Keep { role } if invited => {
                Check::pass("membership", format!("{would}made active as {} by a pending invitation", role.as_str()))
            }
            MembershipStep::Keep { role } => match identity.role.filter(|r| r != role) {
                Some(token_role) => Check::pass(
                    "membership",
                    format!(
                        "active as {} — the database's role; the token's {} only seeds new memberships \
                         (COURSEGRAPH_ROLE_SOURCE=database)",
                        role.as_str(),
                        token_role.as_str()
                    ),
                ),
                None => Check::pass("membership", format!("active as {}", role.as_str())),
            },
            MembershipStep::FollowToken { from, to } => Check::pass(
                "membership",
                format!(
                    "active; the role follows the token (COURSEGRAPH_ROLE_SOURCE=token): {} → {}",
                    from.as_str(),
                    to.as_str()
                ),
            ),
            MembershipStep::Inactive { role } => Check::fail(
                "membership",
                AccessReason::MembershipInactive.as_str(),
                format!(
                    "the membership in `{}` was removed (role {}); a token never re-activates it",
                    slug_of(existing, organization_id(&plan.organization)),
                    role.as_str()
                ),
                REMOVED_HINT,
            ),
        }
    }

    /// The memberships the viewer would have once the plan is carried out, with where
    /// each comes from (`existing`, `invitation`, `provisioning`).
    async fn planned(
        &self,
        identity: &Identity,
        plan: &Plan,
        mut memberships: Vec<MembershipRecord>,
        org_row: Option<entity::organization::Model>,
    ) -> (Vec<MembershipRecord>, Vec<&'static str>) {
        let now = Utc::now();
        let mut sources = vec!["existing"; memberships.len()];
        for inv in plan.invitations.iter().filter(|i| i.effect != InvitationEffect::Keeps) {
            match memberships.iter().position(|m| m.organization_id == inv.organization_id) {
                Some(i) => {
                    // Removal unassigned its custom roles: it comes back with the invited role only.
                    let m = &memberships[i];
                    let row = MembershipRow { id: m.id, role: inv.role, is_active: true, joined_at: m.joined_at };
                    let catalogue = m.organization_roles.to_vec();
                    let org = (*m.organization).clone();
                    memberships[i] = MembershipRecord::new(row, org, Vec::new(), catalogue, &self.config.auth.policy);
                    sources[i] = "invitation";
                }
                None => {
                    let Some(conn) = self.conn else { continue };
                    let Ok(Some(org)) = entity::organization::Entity::find_by_id(inv.organization_id).one(conn).await
                    else {
                        continue;
                    };
                    let catalogue = self.catalogue(org.id).await;
                    memberships.push(record(org, inv.role, now, catalogue, &self.config.auth.policy));
                    sources.push("invitation");
                }
            }
        }
        match (&plan.membership, identity.organization.as_ref()) {
            (MembershipStep::Create { role }, Some(claim)) => {
                let org = org_row.unwrap_or_else(|| {
                    let (name, slug) = match &plan.organization {
                        OrganizationStep::Create { name, slug } => (name.clone(), slug.clone()),
                        _ => (claim.external_id.clone(), claim.external_id.clone()),
                    };
                    entity::organization::Model {
                        id: Uuid::nil(),
                        external_id: Some(claim.external_id.clone()),
                        name,
                        slug,
                        storage_bucket: String::new(),
                        created_at: now,
                        updated_at: now,
                    }
                });
                let catalogue = if org.id.is_nil() { Vec::new() } else { self.catalogue(org.id).await };
                memberships.push(record(org, *role, now, catalogue, &self.config.auth.policy));
                sources.push("provisioning");
            }
            (MembershipStep::FollowToken { to, .. }, _) => {
                let org = organization_id(&plan.organization);
                if let Some(m) = memberships.iter_mut().find(|m| Some(m.organization_id) == org) {
                    m.role = *to;
                    let keys = m.roles.iter().map(|k| &**k);
                    m.grants = self.config.auth.policy.stored_grants(*to, keys, &m.organization_roles);
                }
            }
            _ => {}
        }
        (memberships, sources)
    }

    /// The organization's own roles (none when the database cannot be read).
    async fn catalogue(&self, org: Uuid) -> Vec<RoleGrants> {
        let Some(conn) = self.conn else { return Vec::new() };
        crate::domain::roles::catalogue(conn, org).await.unwrap_or_default()
    }

    /// The active organization: the check, and the organization (`Err`: the one the token
    /// names, where the viewer was removed).
    async fn active_check(
        &self,
        viewer: &Viewer,
        choice: Result<Choice, Decision>,
        header: Option<&str>,
        token_org: Option<&str>,
    ) -> (Check, Result<Option<Uuid>, Uuid>) {
        let h = header.map(str::trim).unwrap_or("");
        let slug = |id: Uuid| viewer.membership(id).map(|m| m.organization_slug.clone()).unwrap_or_default();
        match choice {
            Ok(Choice::Active(o)) if !h.is_empty() => {
                (Check::pass("active_organization", format!("`{h}` (X-Organization-Id): {o}")), Ok(Some(o)))
            }
            Ok(Choice::Active(o)) => {
                let by_token = token_org.is_some()
                    && viewer.membership(o).and_then(|m| m.organization_external_id.as_deref()) == token_org;
                let how = if by_token { "the token's organization" } else { "the only active membership" };
                (Check::pass("active_organization", format!("`{}`, {how}", slug(o))), Ok(Some(o)))
            }
            Ok(Choice::Removed(o)) => (
                Check::fail(
                    "active_organization",
                    AccessReason::MembershipInactive.as_str(),
                    format!(
                        "none: the token names `{}`, where the membership was removed; what acts in the active \
                         organization is FORBIDDEN (MEMBERSHIP_INACTIVE)",
                        slug(o)
                    ),
                    REMOVED_HINT,
                ),
                Err(o),
            ),
            Ok(Choice::None) => (none_active(viewer), Ok(None)),
            Ok(Choice::Lookup { by_id, slug }) => {
                let found = match self.conn {
                    Some(conn) => find_org(conn, by_id, &slug).await.ok().flatten(),
                    None => None,
                };
                match found {
                    Some(id) => (
                        Check::pass(
                            "active_organization",
                            format!("`{h}`: {id} as platform admin (every use is audited)"),
                        ),
                        Ok(Some(id)),
                    ),
                    None => (header_refused(AccessReason::NotAMember, h), Ok(None)),
                }
            }
            Err(d) => (header_refused(d.reason, h), Ok(None)),
        }
    }
}

fn organization_id(step: &OrganizationStep) -> Option<Uuid> {
    match step {
        OrganizationStep::Exists { id } => Some(*id),
        _ => None,
    }
}

fn slug_of(ms: &[MembershipRecord], org: Option<Uuid>) -> String {
    ms.iter().find(|m| Some(m.organization_id) == org).map(|m| m.organization_slug.clone()).unwrap_or_default()
}

fn user_check(identity: &Identity, user: Option<&UserRecord>, would: &str) -> Check {
    match user {
        Some(u) => Check::pass(
            "user",
            format!(
                "user {} (issuer `{}`, subject `{}`), last sign-in {}",
                u.id,
                identity.issuer,
                identity.subject,
                u.last_login_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or("never".into())
            ),
        ),
        None => Check::pass(
            "user",
            format!(
                "{would}not in the database yet: the first request creates it (issuer `{}`, subject `{}`)",
                identity.issuer, identity.subject
            ),
        ),
    }
}

fn organization_check(
    identity: &Identity,
    plan: &Plan,
    row: Option<&entity::organization::Model>,
    would: &str,
) -> Check {
    let Some(claim) = &identity.organization else {
        return Check::skip("organization", "the token names no organization");
    };
    match (&plan.organization, row) {
        (OrganizationStep::Create { slug, .. }, _) => Check::pass(
            "organization",
            format!(
                "{would}external id `{}` is not in the database yet: the first request creates it (slug `{slug}`)",
                claim.external_id
            ),
        ),
        (_, Some(o)) => Check::pass(
            "organization",
            format!("organization {} (slug `{}`, external id `{}`)", o.id, o.slug, claim.external_id),
        ),
        (step, None) => Check::pass("organization", format!("{step:?}")),
    }
}

fn none_active(viewer: &Viewer) -> Check {
    match viewer.active_memberships().count() {
        0 => Check::warn(
            "active_organization",
            "none: no active membership",
            "an ADMIN adds them with addMember or inviteMember",
        )
        .with_reason(AccessReason::NotAMember.as_str()),
        n => Check::warn(
            "active_organization",
            format!(
                "none: {n} active memberships and no X-Organization-Id; operations without an organization argument \
                 have none to act in"
            ),
            "send X-Organization-Id (an id or slug; --organization here) or pass organizationId",
        ),
    }
}

fn header_refused(reason: AccessReason, h: &str) -> Check {
    match reason {
        AccessReason::MembershipInactive => Check::fail(
            "active_organization",
            reason.as_str(),
            format!("X-Organization-Id `{h}`: the membership there was removed; every request with it is FORBIDDEN"),
            "an ADMIN of the organization brings them back with inviteMember or addMember; or send another \
             X-Organization-Id",
        ),
        _ => Check::fail(
            "active_organization",
            AccessReason::NotAMember.as_str(),
            format!("X-Organization-Id `{h}`: not a member (or no such organization: the server answers the same)"),
            "an ADMIN of that organization adds them with addMember or inviteMember; or send another X-Organization-Id",
        ),
    }
}

fn new_user(identity: &Identity) -> UserRecord {
    UserRecord {
        id: Uuid::nil(),
        email: identity.email.clone(),
        name: identity.name.clone(),
        avatar_url: identity.picture.clone(),
        email_verified: identity.email_verified,
        last_login_at: None,
        created_at: Utc::now(),
    }
}

/// The membership provisioning would create in `org` (no roles assigned: the doctor does
/// not show a database-mode seeding of custom roles as grants), with the organization's own roles.
fn record(
    org: entity::organization::Model,
    role: Role,
    now: chrono::DateTime<Utc>,
    catalogue: Vec<RoleGrants>,
    policy: &Policy,
) -> MembershipRecord {
    let row = MembershipRow { id: Uuid::nil(), role, is_active: true, joined_at: now };
    MembershipRecord::new(row, org, Vec::new(), catalogue, policy)
}

fn spelled(g: GrantSet) -> Vec<String> {
    g.iter().map(|g| g.to_string()).collect()
}

fn report(
    viewer: &Viewer,
    plan: &Plan,
    user_id: Option<Uuid>,
    sources: Vec<&'static str>,
    hypothetical: bool,
) -> ViewerReport {
    let active = viewer.active_organization;
    ViewerReport {
        hypothetical,
        user_id,
        would_create: plan.would_create(),
        would_accept_invitations: plan.invitations.iter().map(|i| i.id).collect(),
        plan: plan.clone(),
        active_organization_id: active.filter(|id| !id.is_nil()),
        role: active
            .and_then(|o| viewer.membership(o))
            .map(|m| m.role)
            .or(if viewer.platform_admin && active.is_some() { Some(Role::Admin) } else { None }),
        grants: active.map(|o| spelled(viewer.grants_in(o))).unwrap_or_default(),
        token_grants: viewer
            .token_grants
            .iter()
            .flat_map(|t| &t.held)
            .map(|h| TokenGrantReport { source: h.key.clone(), grants: spelled(h.grants) })
            .collect(),
        memberships: viewer
            .memberships
            .iter()
            .zip(sources)
            .map(|(m, source)| MembershipReport {
                organization_id: Some(m.organization_id).filter(|id| !id.is_nil()),
                organization_slug: Some(m.organization_slug.clone()),
                role: m.role,
                roles: m.roles.iter().map(|k| k.to_string()).collect(),
                grants: spelled(m.grants),
                active: m.is_active,
                source,
            })
            .collect(),
    }
}
