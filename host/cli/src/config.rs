//! Settings for `idem serve` and the record commands: flags first, then the TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use idem_host::store::{Durability, RedisStore, SqliteOptions, SqliteStore, Store};
use idem_host::{Options, StoreFailurePolicy, SystemClock};
use serde::Deserialize;

/// Where records live. Shared by every subcommand that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML file with any of the settings below (flags override it). See README for the keys.
    #[arg(long, env = "IDEM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite store (`idem.db` inside it). Default: ./idem-data
    #[arg(long, env = "IDEM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep records in Redis instead of SQLite, e.g. redis://127.0.0.1:6379/
    #[arg(long, env = "IDEM_REDIS")]
    pub redis: Option<String>,
    /// SQLite durability: "full" fsyncs every commit (nothing acknowledged is lost); "normal" survives process
    /// crashes but may lose the last commits on power loss.
    #[arg(long, value_parser = ["full", "normal"])]
    pub durability: Option<String>,
}

/// `idem serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on. Default: 127.0.0.1:8787
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Put Idempotency-Key semantics in front of this HTTP service, e.g. http://127.0.0.1:3000
    #[arg(long)]
    pub upstream: Option<String>,
    /// Scope of the proxy's records. Default: http
    #[arg(long)]
    pub scope: Option<String>,
    /// Methods the proxy guards (repeat or comma-separate). Default: POST,PATCH
    #[arg(long, value_delimiter = ',')]
    pub guard_method: Vec<String>,
    /// Path prefixes the proxy guards (repeat or comma-separate). Default: every path
    #[arg(long, value_delimiter = ',')]
    pub guard_path: Vec<String>,
    /// What the proxy does with a guarded request that has no Idempotency-Key: "reject" (400) or "pass" it
    /// through unguarded. Default: reject
    #[arg(long, value_parser = ["reject", "pass"])]
    pub missing_key: Option<String>,
    /// Default lease in milliseconds (API callers may override per call). Default: 30000
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// Default retention of finished records in milliseconds. Default: 86400000 (24 h)
    #[arg(long)]
    pub retention_ms: Option<u64>,
    /// Largest stored outcome in bytes. Default: 1048576
    #[arg(long)]
    pub max_outcome_bytes: Option<u32>,
    /// Let operations run unguarded when the store fails, instead of refusing them (503). Default: off
    #[arg(long)]
    pub fail_open: bool,
    /// Log one JSON object per line instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    data_dir: Option<PathBuf>,
    redis: Option<String>,
    durability: Option<String>,
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    scope: Option<String>,
    guard_methods: Option<Vec<String>>,
    guard_paths: Option<Vec<String>>,
    missing_key: Option<String>,
    lease_ms: Option<u64>,
    retention_ms: Option<u64>,
    max_outcome_bytes: Option<u32>,
    fail_open: Option<bool>,
}

fn read_file(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The store a command works on.
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub redis: Option<String>,
    pub durability: Durability,
}

impl StoreConfig {
    fn resolve(args: &StoreArgs, file: &FileConfig) -> Result<Self> {
        let durability = match args.durability.as_deref().or(file.durability.as_deref()).unwrap_or("full") {
            "full" => Durability::Full,
            "normal" => Durability::Normal,
            other => bail!("durability must be \"full\" or \"normal\", not {other:?}"),
        };
        Ok(Self {
            data_dir: args.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| "idem-data".into()),
            redis: args.redis.clone().or_else(|| file.redis.clone()),
            durability,
        })
    }

    pub fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(match &self.redis {
            Some(url) => Arc::new(RedisStore::open(url)?),
            None => {
                let options = SqliteOptions { durability: self.durability, ..SqliteOptions::default() };
                let path = self.data_dir.join("idem.db");
                Arc::new(
                    SqliteStore::open_with(&path, options, Arc::new(SystemClock))
                        .with_context(|| format!("opening {}", path.display()))?,
                )
            }
        })
    }

    pub fn describe(&self) -> String {
        match &self.redis {
            Some(url) => format!("redis {url}"),
            None => format!("sqlite {}", self.data_dir.join("idem.db").display()),
        }
    }
}

pub fn store_config(args: &StoreArgs) -> Result<StoreConfig> {
    StoreConfig::resolve(args, &read_file(args.config.as_deref())?)
}

/// Everything `idem serve` runs with.
pub struct ServeConfig {
    pub store: StoreConfig,
    pub listen: SocketAddr,
    pub proxy: Option<ProxyConfig>,
    pub defaults: Options,
    pub log_json: bool,
}

pub struct ProxyConfig {
    pub upstream: String,
    pub scope: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub require_key: bool,
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> Result<Self> {
        let file = read_file(args.store.config.as_deref())?;
        let store = StoreConfig::resolve(&args.store, &file)?;
        let nonempty = |v: Vec<String>| if v.is_empty() { None } else { Some(v) };
        let upstream = args.upstream.or(file.upstream);
        let proxy = match upstream {
            None => None,
            Some(upstream) => {
                if !upstream.starts_with("http://") {
                    bail!("--upstream must be an http:// URL, not {upstream:?}");
                }
                let require_key = match args.missing_key.as_deref().or(file.missing_key.as_deref()).unwrap_or("reject")
                {
                    "reject" => true,
                    "pass" => false,
                    other => bail!("missing-key must be \"reject\" or \"pass\", not {other:?}"),
                };
                Some(ProxyConfig {
                    upstream: upstream.trim_end_matches('/').to_string(),
                    scope: args.scope.or(file.scope).unwrap_or_else(|| "http".into()),
                    methods: nonempty(args.guard_method)
                        .or(file.guard_methods)
                        .unwrap_or_else(|| vec!["POST".into(), "PATCH".into()])
                        .into_iter()
                        .map(|m| m.to_ascii_uppercase())
                        .collect(),
                    paths: nonempty(args.guard_path).or(file.guard_paths).unwrap_or_else(|| vec!["/".into()]),
                    require_key,
                })
            }
        };
        let fail_open = args.fail_open || file.fail_open.unwrap_or(false);
        Ok(Self {
            store,
            listen: args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8787".parse().unwrap()),
            proxy,
            defaults: Options {
                lease_ms: args.lease_ms.or(file.lease_ms),
                retention_ms: args.retention_ms.or(file.retention_ms),
                max_outcome_bytes: args.max_outcome_bytes.or(file.max_outcome_bytes),
                on_store_failure: fail_open.then_some(StoreFailurePolicy::FailOpen),
            },
            log_json: args.log_json,
        })
    }
}
