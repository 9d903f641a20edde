//! `idem`: run the guard as an HTTP service, or look at its records.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use idem_cli::api;
use idem_cli::app::App;
use idem_cli::config::{ServeArgs, ServeConfig, StoreArgs, store_config};
use idem_host::{Guard, Operation};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(name = "idem", version, about = "Make an operation happen once: claim, replay, refuse duplicates.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the JSON API (and, with --upstream, an Idempotency-Key proxy) over HTTP.
    Serve(ServeArgs),
    /// Show one operation's record in a few lines.
    Status(RecordArgs),
    /// Show one operation's record as JSON.
    Inspect(RecordArgs),
    /// Delete one operation's record whatever its state (the next claim starts afresh).
    Forget(RecordArgs),
    /// Print the SHA-256 of the embedded guard component, or write the component to a file.
    Component {
        /// Write the component's bytes here.
        #[arg(long)]
        write: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct RecordArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The operation's scope, e.g. payments
    scope: String,
    /// The operation's key, e.g. order-42/charge
    key: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(ServeConfig::resolve(args)?),
        Command::Status(args) => record(args, false),
        Command::Inspect(args) => record(args, true),
        Command::Forget(args) => {
            let guard = Guard::builder().shared_store(store_config(&args.store)?.open()?).build()?;
            let existed = guard.forget(&Operation { scope: args.scope, key: args.key })?;
            println!("{}", if existed { "forgotten" } else { "no record" });
            Ok(())
        }
        Command::Component { write } => {
            if let Some(path) = write {
                std::fs::write(&path, idem_host::GUARD_WASM).with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{}", hex::encode(Sha256::digest(idem_host::GUARD_WASM)));
            Ok(())
        }
    }
}

fn record(args: RecordArgs, json: bool) -> Result<()> {
    let store = store_config(&args.store)?;
    let guard = Guard::builder().shared_store(store.open()?).build()?;
    let op = Operation { scope: args.scope, key: args.key };
    let Some(report) = guard.status(&op)? else {
        if json {
            println!("null");
        } else {
            println!("no record for {}/{} in {}", op.scope, op.key, store.describe());
        }
        return Ok(());
    };
    let v = api::status_json(&op, &report);
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let time = |ms: &serde_json::Value| ms.as_u64().map_or("-".to_string(), |ms| format!("{ms} ms since epoch"));
    println!("{}/{}", op.scope, op.key);
    println!("  state          {}", v["state"].as_str().unwrap_or("?"));
    println!("  attempts       {}", report.attempts);
    println!("  fencing token  {}", report.fencing_token);
    println!("  created        {}", time(&v["created_at"]));
    println!("  updated        {}", time(&v["updated_at"]));
    println!("  lease expires  {}", time(&v["lease_expires_at"]));
    println!("  finished       {}", time(&v["finished_at"]));
    println!("  outcome bytes  {}", report.outcome_bytes.map_or("-".into(), |b| b.to_string()));
    println!("  fingerprint    {}", v["fingerprint"].as_str().unwrap_or(""));
    Ok(())
}

fn serve(config: ServeConfig) -> Result<()> {
    init_logging(config.log_json);
    let store = config.store.open()?;
    let guard = Guard::builder().shared_store(store).build()?;
    let listen = config.listen;
    let proxying = config.proxy.as_ref().map(|p| p.upstream.clone());
    let app = App::new(guard, config.defaults, config.proxy);

    let router = idem_cli::router(app);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        tracing::info!(
            listen = %listener.local_addr()?, store = %config.store.describe(),
            upstream = proxying.as_deref().unwrap_or("-"), "idem serving"
        );
        axum::serve(listener, router).with_graceful_shutdown(shutdown()).await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IDEM_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { builder.json().init() } else { builder.init() }
}
