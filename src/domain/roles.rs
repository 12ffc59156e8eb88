//! Custom roles and their assignments: the rows and their one writer each, an
//! organization's roles, a membership's stored grants, and the columns that carry both
//! into the viewer's one statement.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{membership, membership_role, role};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::authz::{
    grants::{Grant, GrantSet},
    roles::{Policy, RoleDef, RoleGrants, RoleKind},
};

/// The stored spelling of a grant set: a JSON array (`["READ_COURSE", "MANAGE_TRACKS:OWN"]`).
pub fn encode_grants(g: GrantSet) -> String {
    serde_json::Value::from(g.iter().map(|g| g.to_string()).collect::<Vec<_>>()).to_string()
}

/// A stored grant set. A grant this build does not know (written by a newer one) is
/// skipped: it grants nothing rather than failing every reader.
pub fn decode_grants(s: &str) -> GrantSet {
    let spelled: Vec<String> = serde_json::from_str(s).unwrap_or_default();
    GrantSet::from_grants(spelled.iter().filter_map(|g| Grant::parse(g).ok()))
}

/// A custom role's row as a role.
pub fn role_def(m: &role::Model) -> RoleDef {
    RoleDef {
        id: m.id,
        key: m.key.as_str().into(),
        name: m.name.clone(),
        description: m.description.clone(),
        grants: decode_grants(&m.grants),
        kind: RoleKind::Custom { organization_id: m.organization_id },
    }
}

/// `org`'s own roles, by key.
pub async fn organization_roles(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<RoleDef>, DbErr> {
    Ok(organizations_roles(db, &[org]).await?.remove(&org).unwrap_or_default())
}

/// The own roles of each of `orgs`, by key (in one statement: a page of memberships).
pub async fn organizations_roles(
    db: &impl ConnectionTrait,
    orgs: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<RoleDef>>, DbErr> {
    let rows = role::Entity::find()
        .filter(role::Column::OrganizationId.is_in(orgs.iter().copied()))
        .order_by_asc(role::Column::Key)
        .all(db)
        .await?;
    let mut by = std::collections::HashMap::<Uuid, Vec<RoleDef>>::new();
    for r in &rows {
        by.entry(r.organization_id).or_default().push(role_def(r));
    }
    Ok(by)
}

/// `org`'s own roles as keys and grants.
pub async fn catalogue(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<RoleGrants>, DbErr> {
    Ok(organization_roles(db, org).await?.into_iter().map(|r| RoleGrants { key: r.key, grants: r.grants }).collect())
}

/// The keys of the roles assigned to membership `id`.
pub async fn assigned(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<String>, DbErr> {
    Ok(assigned_to(db, &[id]).await?.remove(&id).unwrap_or_default())
}

/// The keys of the roles assigned to each of `memberships` (in one statement).
pub async fn assigned_to(
    db: &impl ConnectionTrait,
    memberships: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, DbErr> {
    assigned_where(db, membership_role::Column::MembershipId.is_in(memberships.iter().copied())).await
}

/// The roles assigned in `org`, by membership.
pub async fn assignments(
    db: &impl ConnectionTrait,
    org: Uuid,
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, DbErr> {
    assigned_where(db, membership_role::Column::OrganizationId.eq(org)).await
}

/// The assigned keys of the memberships `which` selects, by membership, in key order.
async fn assigned_where(
    db: &impl ConnectionTrait,
    which: sea_orm::sea_query::SimpleExpr,
) -> Result<std::collections::HashMap<Uuid, Vec<String>>, DbErr> {
    let rows: Vec<(Uuid, String)> = membership_role::Entity::find()
        .select_only()
        .column(membership_role::Column::MembershipId)
        .column(membership_role::Column::RoleKey)
        .filter(which)
        .order_by_asc(membership_role::Column::RoleKey)
        .into_tuple()
        .all(db)
        .await?;
    let mut by = std::collections::HashMap::<Uuid, Vec<String>>::new();
    for (m, k) in rows {
        by.entry(m).or_default().push(k);
    }
    Ok(by)
}

/// What membership `m` holds as stored: its built-in role's grants and its assigned roles'.
pub async fn stored_grants(
    db: &impl ConnectionTrait,
    policy: &Policy,
    m: &membership::Model,
) -> Result<GrantSet, DbErr> {
    let keys = assigned(db, m.id).await?;
    let custom = catalogue(db, m.organization_id).await?;
    Ok(policy.stored_grants(m.role, keys.iter().map(String::as_str), &custom))
}

/// A new custom role.
pub struct NewRole<'a> {
    pub organization_id: Uuid,
    pub key: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub grants: GrantSet,
    pub now: DateTime<Utc>,
}

/// Inserts a custom role; `None` when the organization has one with that key already.
pub async fn insert(db: &impl ConnectionTrait, new: &NewRole<'_>) -> Result<Option<role::Model>, DbErr> {
    let m = role::Model {
        id: Uuid::now_v7(),
        organization_id: new.organization_id,
        key: new.key.to_owned(),
        name: new.name.to_owned(),
        description: new.description.map(str::to_owned),
        grants: encode_grants(new.grants),
        created_at: new.now,
        updated_at: new.now,
    };
    let q = Query::insert()
        .into_table(role::Entity)
        .columns([
            role::Column::Id,
            role::Column::OrganizationId,
            role::Column::Key,
            role::Column::Name,
            role::Column::Description,
            role::Column::Grants,
            role::Column::CreatedAt,
            role::Column::UpdatedAt,
        ])
        .values_panic([
            m.id.into(),
            m.organization_id.into(),
            m.key.clone().into(),
            m.name.clone().into(),
            m.description.clone().into(),
            m.grants.clone().into(),
            m.created_at.into(),
            m.updated_at.into(),
        ])
        .on_conflict(OnConflict::columns([role::Column::OrganizationId, role::Column::Key]).do_nothing().to_owned())
        .to_owned();
    Ok((db.execute(&q).await?.rows_affected() == 1).then_some(m))
}

/// Writes `changed` over role `id` (name, description, grants).
pub async fn update(db: &impl ConnectionTrait, changed: &role::Model) -> Result<(), DbErr> {
    let q = Query::update()
        .table(role::Entity)
        .value(role::Column::Name, changed.name.clone())
        .value(role::Column::Description, changed.description.clone())
        .value(role::Column::Grants, changed.grants.clone())
        .value(role::Column::UpdatedAt, changed.updated_at)
        .and_where(Expr::col(role::Column::Id).eq(changed.id))
        .to_owned();
    db.execute(&q).await?;
    Ok(())
}

/// Deletes role `r`, after unassigning it from every membership (returned, as they were).
pub async fn delete(db: &impl ConnectionTrait, r: &role::Model) -> Result<Vec<membership::Model>, DbErr> {
    let held = holders(db, r.organization_id, &r.key).await?;
    membership_role::Entity::delete_many()
        .filter(membership_role::Column::OrganizationId.eq(r.organization_id))
        .filter(membership_role::Column::RoleKey.eq(r.key.as_str()))
        .exec(db)
        .await?;
    role::Entity::delete_by_id(r.id).exec(db).await?;
    Ok(held)
}

/// The memberships of `org` holding the role `key`.
pub async fn holders(db: &impl ConnectionTrait, org: Uuid, key: &str) -> Result<Vec<membership::Model>, DbErr> {
    let ids = Query::select()
        .column(membership_role::Column::MembershipId)
        .from(membership_role::Entity)
        .and_where(Expr::col(membership_role::Column::OrganizationId).eq(org))
        .and_where(Expr::col(membership_role::Column::RoleKey).eq(key))
        .to_owned();
    membership::Entity::find().filter(membership::Column::Id.in_subquery(ids)).all(db).await
}

/// Assigns role `key` to membership `m`; false when it held it already.
pub async fn assign(
    db: &impl ConnectionTrait,
    m: &membership::Model,
    key: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let q = Query::insert()
        .into_table(membership_role::Entity)
        .columns([
            membership_role::Column::MembershipId,
            membership_role::Column::OrganizationId,
            membership_role::Column::RoleKey,
            membership_role::Column::CreatedAt,
        ])
        .values_panic([m.id.into(), m.organization_id.into(), key.into(), now.into()])
        .on_conflict(
            OnConflict::columns([membership_role::Column::MembershipId, membership_role::Column::RoleKey])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    Ok(db.execute(&q).await?.rows_affected() == 1)
}

/// Unassigns role `key` from membership `id`; false when it did not hold it.
pub async fn unassign(db: &impl ConnectionTrait, id: Uuid, key: &str) -> Result<bool, DbErr> {
    let r = membership_role::Entity::delete_many()
        .filter(membership_role::Column::MembershipId.eq(id))
        .filter(membership_role::Column::RoleKey.eq(key))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Unassigns every role from membership `id`; the keys it held.
pub async fn unassign_all(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<String>, DbErr> {
    let keys = assigned(db, id).await?;
    if !keys.is_empty() {
        membership_role::Entity::delete_many().filter(membership_role::Column::MembershipId.eq(id)).exec(db).await?;
    }
    Ok(keys)
}

/// Keys assigned to some membership that name neither its organization's own role nor a
/// policy-file role: they grant nothing.
pub async fn orphaned_keys(db: &impl ConnectionTrait, policy: &Policy) -> Result<Vec<String>, DbErr> {
    let q = Query::select()
        .distinct()
        .column((membership_role::Entity, membership_role::Column::RoleKey))
        .from(membership_role::Entity)
        .left_join(
            role::Entity,
            Expr::col((role::Entity, role::Column::OrganizationId))
                .equals((membership_role::Entity, membership_role::Column::OrganizationId))
                .and(
                    Expr::col((role::Entity, role::Column::Key))
                        .equals((membership_role::Entity, membership_role::Column::RoleKey)),
                ),
        )
        .and_where(Expr::col((role::Entity, role::Column::Id)).is_null())
        .to_owned();
    let mut keys = Vec::new();
    for row in db.query_all(&q).await? {
        let key: String = row.try_get_by_index(0)?;
        if policy.file_role(&key).is_none() {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// SQL for a column of the viewer's statement: the keys assigned to the membership whose
/// id is `membership_id` (an SQL expression), comma-separated, or NULL.
pub fn assigned_keys_sql(backend: DbBackend, membership_id: &str) -> String {
    let agg = match backend {
        DbBackend::Postgres => "string_agg(mr.role_key, ',')",
        _ => "group_concat(mr.role_key, ',')",
    };
    format!("(SELECT {agg} FROM membership_roles mr WHERE mr.membership_id = {membership_id})")
}

/// SQL for a column of the viewer's statement: the own roles of the organization whose
/// id is `organization_id` (an SQL expression) as a JSON array of `[key, grants]`, or NULL.
pub fn catalogue_sql(backend: DbBackend, organization_id: &str) -> String {
    let agg = match backend {
        DbBackend::Postgres => "json_agg(json_build_array(r.key, r.grants))::text",
        _ => "json_group_array(json_array(r.key, r.grants))",
    };
    format!("(SELECT {agg} FROM roles r WHERE r.organization_id = {organization_id})")
}

/// The keys [`assigned_keys_sql`] reads.
pub fn decode_keys(s: Option<&str>) -> Vec<Arc<str>> {
    s.map(|s| s.split(',').filter(|k| !k.is_empty()).map(Arc::from).collect()).unwrap_or_default()
}

/// The roles [`catalogue_sql`] reads.
pub fn decode_catalogue(s: Option<&str>) -> Vec<RoleGrants> {
    let pairs: Vec<(String, String)> = s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    pairs.into_iter().map(|(key, grants)| RoleGrants { key: key.into(), grants: decode_grants(&grants) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Action;

    #[test]
    fn grants_round_trip_through_their_stored_spelling() {
        let g = GrantSet::from_grants([Grant::org(Action::ReadCourse), Grant::own(Action::ManageTracks)]);
        assert_eq!(encode_grants(g), r#"["READ_COURSE","MANAGE_TRACKS:OWN"]"#);
        assert_eq!(decode_grants(&encode_grants(g)), g);
        assert_eq!(
            decode_grants(r#"["READ_COURSE","FLY_TO_THE_MOON"]"#),
            GrantSet::from_grants([Grant::org(Action::ReadCourse)])
        );
    }

    #[test]
    fn the_viewer_columns_decode() {
        assert_eq!(decode_keys(Some("a,b")), vec![Arc::from("a"), Arc::from("b")]);
        assert!(decode_keys(None).is_empty());
        let c = decode_catalogue(Some(r#"[["ta","[\"READ_COURSE\"]"]]"#));
        assert_eq!(
            c,
            vec![RoleGrants { key: "ta".into(), grants: GrantSet::from_grants([Grant::org(Action::ReadCourse)]) }]
        );
        assert!(decode_catalogue(Some("[]")).is_empty() && decode_catalogue(None).is_empty());
    }
}
