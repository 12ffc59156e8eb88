//! What a write tells other processes (PostgreSQL `NOTIFY`), sent in one statement per
//! transaction, folded into the transaction's last writes where it has them: a write's
//! cost is counted in round trips, and a `SELECT pg_notify(…)` per event was most of it.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// One notification: its channel and payload (under 8000 bytes, PostgreSQL's limit).
pub type Note = (&'static str, String);

/// Runs `writes` and sends `notes` in that order, as one statement on PostgreSQL (the
/// notifications travel only if the caller's transaction commits). On SQLite the writes
/// run one by one and there is nobody to notify: the one process applies its changes
/// itself.
///
/// On PostgreSQL the writes become data-modifying `WITH` clauses of one statement: they
/// all see the snapshot from before any of them, so they must touch different rows
/// (each may still depend on what earlier statements of the transaction did).
pub async fn send(db: &impl ConnectionTrait, writes: Vec<Statement>, notes: &[Note]) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        for w in writes {
            db.execute_raw(w).await?;
        }
        return Ok(());
    }
    if writes.is_empty() && notes.is_empty() {
        return Ok(());
    }
    db.execute_raw(fold(writes, notes)).await.map(|_| ())
}

/// The one PostgreSQL statement of [`send`]: `WITH w0 AS (…), w1 AS (…) SELECT
/// count(pg_notify(…)) FROM json_array_elements($n::json) WITH ORDINALITY …`, each write's
/// placeholders renumbered after the ones before it, the notes last (a JSON array keeps
/// their order, and `pg_notify` runs row by row in it).
pub fn fold(writes: Vec<Statement>, notes: &[Note]) -> Statement {
    let mut sql = String::new();
    let mut values: Vec<Value> = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        sql.push_str(if i == 0 { "WITH " } else { ", " });
        sql.push_str(&format!("w{i} AS ("));
        sql.push_str(&renumber(&w.sql, values.len()));
        sql.push(')');
        if let Some(v) = w.values {
            values.extend(v.0);
        }
        sql.push(' ');
    }
    let list: Vec<[&str; 2]> = notes.iter().map(|(c, p)| [*c, p.as_str()]).collect();
    values.push(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()).into());
    sql.push_str(&format!(
        "SELECT count(pg_notify(n.e->>0, n.e->>1)) FROM json_array_elements(${}::json) WITH ORDINALITY AS n(e, o)",
        values.len()
    ));
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `sql` with every placeholder `$k` made `$(k + by)`. Placeholders are all a statement
/// built by sea-query holds outside quotes; quoted strings and identifiers are copied as
/// they are.
fn renumber(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    n.push(d);
                    chars.next();
                }
                out.push('$');
                out.push_str(&(n.parse::<usize>().unwrap_or(0) + by).to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_move_past_the_earlier_writes_and_quotes_stay() {
        assert_eq!(
            renumber("UPDATE t SET a = $1, \"b$2\" = '$3' WHERE c = $12", 2),
            "UPDATE t SET a = $3, \"b$2\" = '$3' WHERE c = $14"
        );
        assert_eq!(renumber("SELECT $1", 0), "SELECT $1");
    }

    #[test]
    fn writes_and_notes_fold_into_one_statement() {
        let w = |sql: &str, v: Vec<Value>| Statement::from_sql_and_values(DbBackend::Postgres, sql, v);
        let s = fold(
            vec![
                w("UPDATE t SET p = p + 1 WHERE c = $1", vec![7.into()]),
                w("INSERT INTO t (id, p) VALUES ($1, $2)", vec![1.into(), 2.into()]),
            ],
            &[("ch", "a\"b".into()), ("ch", "c".into())],
        );
        assert_eq!(
            s.sql,
            "WITH w0 AS (UPDATE t SET p = p + 1 WHERE c = $1) , w1 AS (INSERT INTO t (id, p) VALUES ($2, $3)) \
             SELECT count(pg_notify(n.e->>0, n.e->>1)) FROM json_array_elements($4::json) WITH ORDINALITY AS n(e, o)"
        );
        let v = s.values.unwrap().0;
        assert_eq!(v.len(), 4);
        assert_eq!(v[3], Value::from(r#"[["ch","a\"b"],["ch","c"]]"#));
    }
}
