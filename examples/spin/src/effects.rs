//! The side effect the guard protects: releasing a work order writes one row. Counting the rows shows how many
//! times the operation really ran, whatever the clients saw.

use spin_sdk::sqlite::{Connection, Error, Value};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS work_order_releases (
    id INTEGER PRIMARY KEY,
    work_order TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    attempt INTEGER NOT NULL
)";

async fn open() -> Result<Connection, Error> {
    let db = Connection::open_default().await?;
    db.execute(SCHEMA, []).await?.result().await?;
    Ok(db)
}

/// Records one release and returns its row id. The fencing token goes with it, so a downstream reader can
/// tell a stale worker's write from the current holder's.
pub async fn release(
    work_order: &str,
    key: &str,
    fencing_token: u64,
    attempt: u32,
) -> Result<i64, Error> {
    let db = open().await?;
    db.execute(
        "INSERT INTO work_order_releases (work_order, idempotency_key, fencing_token, attempt)
         VALUES (?1, ?2, ?3, ?4)",
        [
            Value::Text(work_order.to_owned()),
            Value::Text(key.to_owned()),
            Value::Integer(i64::try_from(fencing_token).unwrap_or(i64::MAX)),
            Value::Integer(i64::from(attempt)),
        ],
    )
    .await?
    .result()
    .await?;
    Ok(db.last_insert_rowid().await)
}

/// Every release of `work_order` so far, oldest first: (row id, fencing token).
pub async fn releases(work_order: &str) -> Result<Vec<(i64, i64)>, Error> {
    let db = open().await?;
    let rows = db
        .execute(
            "SELECT id, fencing_token FROM work_order_releases WHERE work_order = ?1 ORDER BY id",
            [Value::Text(work_order.to_owned())],
        )
        .await?
        .collect()
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| Some((row.get::<i64>(0)?, row.get::<i64>(1)?)))
        .collect())
}
