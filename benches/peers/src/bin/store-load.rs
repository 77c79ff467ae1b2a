//! `store-load`: write, read and list throughput of micro's stores, and of the raw clients
//! doing the same operations (issue 13's store benchmark).
//!
//! ```sh
//! cargo run --release -p micro-bench-peers --bin store-load -- \
//!     [--systems memory,file,postgres,raw-postgres,redis,raw-redis] [--records 5000] \
//!     [--concurrency 16] [--rounds 3] [--postgres postgres://postgres@127.0.0.1:5432/test] \
//!     [--redis redis://127.0.0.1:6379]
//! ```
//!
//! Each run writes `--records` records of 100 bytes (keys `k000000`..), reads each back by
//! key, then lists by prefix 200 times (prefixes matching 100 keys each), from
//! `--concurrency` tasks. `raw-postgres` is tokio-postgres through deadpool (the pool the
//! postgres store uses, same size) running the statements the store runs: an upsert, a
//! select by key, a select by key range. Every system gets a fresh table or directory per
//! run. Systems run round-robin `--rounds` times; the summary is each one's median.

use bytes::Bytes;
use micro::store::{ListOptions, ReadOptions, Record, Scope, Store, WriteOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: store-load [--systems memory,file,postgres,raw-postgres,redis,raw-redis] \
[--records N] [--concurrency N] [--rounds N] [--postgres URL] [--redis URL]";
const SYSTEMS: [&str; 6] = [
    "memory",
    "file",
    "postgres",
    "raw-postgres",
    "redis",
    "raw-redis",
];
const LISTS: usize = 200;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    systems: Vec<String>,
    records: usize,
    concurrency: usize,
    rounds: usize,
    postgres: String,
    redis: String,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        systems: SYSTEMS.iter().map(|s| s.to_string()).collect(),
        records: 5000,
        concurrency: 16,
        rounds: 3,
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
        redis: "redis://127.0.0.1:6379".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: bad number {v:?}"))
        };
        match flag.as_str() {
            "--systems" => options.systems = value()?.split(',').map(str::to_string).collect(),
            "--records" => options.records = number(value()?)?.max(100),
            "--concurrency" => options.concurrency = number(value()?)?.max(1),
            "--rounds" => options.rounds = number(value()?)?.max(1),
            "--postgres" => options.postgres = value()?,
            "--redis" => options.redis = value()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(bad) = options
        .systems
        .iter()
        .find(|s| !SYSTEMS.contains(&s.as_str()))
    {
        return Err(format!("unknown system {bad:?}: {}", SYSTEMS.join(", ")));
    }
    Ok(options)
}

/// The three operations of one system.
#[async_trait::async_trait]
trait Target: Send + Sync {
    async fn write(&self, key: &str, value: Bytes) -> Result<(), BoxError>;
    async fn read(&self, key: &str) -> Result<(), BoxError>;
    /// Lists by prefix; returns how many keys matched.
    async fn list(&self, prefix: &str) -> Result<usize, BoxError>;
}

/// A micro store under a scope of its own.
struct MicroStore {
    store: Arc<dyn Store>,
    /// The scope of each operation; `None` = the store's default scope (redis and postgres
    /// are made with the benchmark's scope as their default, as a service configures them
    /// with `store.database`/`store.table`).
    scope: Option<Scope>,
}

impl MicroStore {
    fn scope(&self) -> Scope {
        self.scope.clone().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Target for MicroStore {
    async fn write(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let options = WriteOptions::default().scope(self.scope());
        Ok(self.store.write(Record::new(key, value), options).await?)
    }

    async fn read(&self, key: &str) -> Result<(), BoxError> {
        let options = ReadOptions::default().scope(self.scope());
        let found = self.store.read(key, options).await?;
        if found.len() != 1 {
            return Err(format!("read {key}: {} records", found.len()).into());
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<usize, BoxError> {
        let options = ListOptions::default().scope(self.scope()).prefix(prefix);
        Ok(self.store.list(options).await?.len())
    }
}

/// tokio-postgres through deadpool, running the postgres store's statements.
struct RawPostgres {
    pool: deadpool_postgres::Pool,
    table: String,
}

impl RawPostgres {
    async fn new(url: &str, schema: &str) -> Result<Self, BoxError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(8)
            .build()?;
        let table = format!("\"{schema}\".\"bench\"");
        let client = pool.get().await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; CREATE TABLE {table} (key text \
                 COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL, metadata jsonb NOT NULL, \
                 expiry timestamptz NULL)"
            ))
            .await?;
        Ok(RawPostgres { pool, table })
    }
}

#[async_trait::async_trait]
impl Target for RawPostgres {
    async fn write(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let sql = format!(
            "INSERT INTO {} (key, value, metadata, expiry) VALUES ($1, $2, $3, NULL) ON \
             CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, metadata = \
             EXCLUDED.metadata, expiry = EXCLUDED.expiry",
            self.table
        );
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&sql).await?;
        let metadata = serde_json::json!({});
        client
            .execute(&statement, &[&key, &&value[..], &metadata])
            .await?;
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<(), BoxError> {
        let sql = format!(
            "SELECT key, value, metadata, expiry FROM {} WHERE key = $1 AND (expiry IS NULL \
             OR expiry > now())",
            self.table
        );
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &[&key]).await?;
        if rows.len() != 1 {
            return Err(format!("read {key}: {} rows", rows.len()).into());
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<usize, BoxError> {
        let sql = format!(
            "SELECT key FROM {} WHERE key >= $1 AND key < $2 AND (expiry IS NULL OR expiry > \
             now()) ORDER BY key",
            self.table
        );
        let end = format!("{}\u{10FFFF}", prefix);
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&sql).await?;
        Ok(client.query(&statement, &[&prefix, &end]).await?.len())
    }
}

/// The redis client's reconnecting connection, running the redis store's commands: SET,
/// GET, and SCAN MATCH + MGET for a prefix.
struct RawRedis {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

#[async_trait::async_trait]
impl Target for RawRedis {
    async fn write(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let mut connection = self.connection.clone();
        let key = format!("{}{key}", self.prefix);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(&value[..])
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<(), BoxError> {
        let mut connection = self.connection.clone();
        let key = format!("{}{key}", self.prefix);
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await?;
        value
            .map(drop)
            .ok_or_else(|| format!("read {key}: missing").into())
    }

    async fn list(&self, prefix: &str) -> Result<usize, BoxError> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}{prefix}*", self.prefix);
        let mut cursor = 0u64;
        let mut keys: Vec<String> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await?;
        Ok(values.into_iter().flatten().count())
    }
}

/// Deletes the keys under `prefix` (SCAN + DEL).
async fn delete_keys(url: &str, prefix: &str) -> Result<(), BoxError> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            let () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Runs `op(i)` for i in 0..n from `concurrency` tasks; returns ops/s.
async fn drive<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<f64, BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), BoxError>(());
                    }
                    op(i).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// One run of `system`: (writes/s, reads/s, lists/s).
async fn run(system: &str, options: &Options, round: usize) -> Result<[f64; 3], BoxError> {
    let name = format!(
        "bench_{}_{round}_{}",
        system.replace('-', "_"),
        std::process::id()
    );
    let dir = tempfile::tempdir()?;
    let target: Arc<dyn Target> = match system {
        "memory" => Arc::new(MicroStore {
            store: Arc::new(micro::memory::MemoryStore::new()),
            scope: Some(Scope::new(&name, "bench")),
        }),
        "file" => Arc::new(MicroStore {
            store: Arc::new(micro::file::FileStore::open(dir.path())?),
            scope: Some(Scope::new(&name, "bench")),
        }),
        "postgres" => {
            let options_pg = micro::postgres::store::PostgresStoreOptions::default();
            let connector = micro::postgres::connection::Connector::new(
                std::slice::from_ref(&options.postgres),
                "store",
                options_pg.pool_size,
            )?;
            let scope = Scope::new(&name, "bench");
            Arc::new(MicroStore {
                store: Arc::new(micro::postgres::PostgresStore::new(
                    connector, scope, options_pg,
                )),
                scope: None,
            })
        }
        "redis" => Arc::new(MicroStore {
            store: Arc::new(micro::redis::RedisStore::new(
                micro::redis::Connector::new(std::slice::from_ref(&options.redis), "store"),
                Scope::new(&name, "bench"),
            )),
            scope: None,
        }),
        "raw-redis" => Arc::new(RawRedis {
            connection: redis::aio::ConnectionManager::new(redis::Client::open(
                options.redis.as_str(),
            )?)
            .await?,
            prefix: format!("{name}:bench:"),
        }),
        _ => Arc::new(RawPostgres::new(&options.postgres, &name).await?),
    };
    // Connects before timing (the micro stores connect on first use, the raw clients above
    // already did): a list matching nothing, its result not needed.
    let _ = target.list("warm-up").await;
    let value = Bytes::from(vec![b'v'; 100]);
    let records = options.records;
    let key = |i: usize| format!("k{i:06}");
    let t = target.clone();
    let writes = drive(records, options.concurrency, move |i| {
        let (t, value) = (t.clone(), value.clone());
        async move { t.write(&key(i), value).await }
    })
    .await?;
    let t = target.clone();
    let reads = drive(records, options.concurrency, move |i| {
        let t = t.clone();
        async move { t.read(&key(i)).await }
    })
    .await?;
    let t = target.clone();
    let groups = records / 100;
    let lists = drive(LISTS, options.concurrency, move |i| {
        let t = t.clone();
        async move {
            // Keys k000100..k000199 share the prefix k0001, and so on.
            let prefix = format!("k{:04}", i % groups);
            match t.list(&prefix).await? {
                100 => Ok(()),
                n => Err(format!("list {prefix}: {n} keys, not 100").into()),
            }
        }
    })
    .await?;
    if system.contains("postgres") {
        drop_schema(&options.postgres, &name).await?;
    }
    if system.contains("redis") {
        delete_keys(&options.redis, &name).await?;
    }
    Ok([writes, reads, lists])
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), BoxError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "store-load: {} records of 100 bytes, {LISTS} prefix lists of 100 keys, concurrency \
         {}, {} rounds",
        options.records, options.concurrency, options.rounds
    );
    let mut results: Vec<(String, Vec<[f64; 3]>)> = options
        .systems
        .iter()
        .map(|s| (s.clone(), Vec::new()))
        .collect();
    for round in 1..=options.rounds {
        for (system, runs) in results.iter_mut() {
            match run(system, &options, round).await {
                Ok(rates) => runs.push(rates),
                Err(err) => {
                    eprintln!("{system}: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!();
    println!("| system | writes/s | reads/s | lists/s |");
    println!("| --- | ---: | ---: | ---: |");
    let medians: Vec<(String, [f64; 3])> = results
        .iter()
        .map(|(system, runs)| {
            let m = |i: usize| median(runs.iter().map(|r| r[i]).collect());
            (system.clone(), [m(0), m(1), m(2)])
        })
        .collect();
    for (system, [w, r, l]) in &medians {
        println!("| {system} | {w:.0} | {r:.0} | {l:.0} |");
    }
    let find = |name: &str| medians.iter().find(|(s, _)| s == name).map(|(_, m)| *m);
    for (ours, raw) in [("postgres", "raw-postgres"), ("redis", "raw-redis")] {
        if let (Some(a), Some(b)) = (find(ours), find(raw)) {
            println!();
            println!(
                "{ours} / {raw}: writes {:.2}, reads {:.2}, lists {:.2} (target ≥ 0.90)",
                a[0] / b[0],
                a[1] / b[1],
                a[2] / b[2]
            );
        }
    }
    ExitCode::SUCCESS
}
