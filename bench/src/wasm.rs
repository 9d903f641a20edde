//! 1. The component in wasmtime against the same logic compiled natively, both on the host's memory store.
//! 2. What one per-call instantiation costs, with the host's configuration and with the pooling allocator.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use idem_host::store::MemoryStore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::Scale;
use crate::report::{Report, us};
use crate::stats::{Samples, interleaved};
use crate::workload::{Cycle, Native, Wasm};

pub fn overhead(r: &mut Report, s: &Scale, runtime: &idem_host::Runtime) -> Result<()> {
    r.section("1. wasm overhead: component in wasmtime vs the same logic native (memory store)");
    let wasm = Wasm(idem_host::Guard::builder().runtime(runtime.clone()).store(MemoryStore::new()).build()?);
    let native = Native(crate::native::guard(Arc::new(MemoryStore::new())));
    let sides: [&dyn Cycle; 2] = [&native, &wasm];
    let names = ["native `idem_component::guard::Guard`", "component in wasmtime (`idem_host::Guard`)"];

    // Warm up both (page faults, caches, lazily initialised state), then the completed keys for duplicates.
    for (v, side) in sides.iter().enumerate() {
        for i in 0..s.dup_keys {
            side.claim_complete(&format!("dup-{v}-{i}"), i)?;
        }
    }
    let mut failed = None;
    let cycles = interleaved(2, s.mem_cycles, 10, |v, i| {
        if let Err(e) = sides[v].claim_complete(&format!("cycle-{v}-{i}"), i) {
            failed.get_or_insert(e);
        }
    });
    let dups = interleaved(2, s.mem_cycles, 10, |v, i| {
        let k = i % s.dup_keys;
        if let Err(e) = sides[v].duplicate(&format!("dup-{v}-{k}"), k) {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    r.line("Single thread, sequential. A *cycle* is `claim` (acquired) + `complete`; a *duplicate* is one `claim` answered with `replay`. Both sides use `idem_host::store::MemoryStore`; the native side reaches it through a type-converting adapter.\n");
    r.line("**claim + complete cycle**\n");
    r.table("variant", &[(names[0].into(), cycles[0].summary()), (names[1].into(), cycles[1].summary())]);
    r.line("**duplicate (replay) cycle**\n");
    r.table("variant", &[(names[0].into(), dups[0].summary()), (names[1].into(), dups[1].summary())]);
    let ratio = cycles[1].summary().mean_us / cycles[0].summary().mean_us;
    let dratio = dups[1].summary().mean_us / dups[0].summary().mean_us;
    r.headline(
        "1. wasm / native, claim+complete (memory)",
        format!("{ratio:.1}× ({} vs {} µs)", us(cycles[1].summary().mean_us), us(cycles[0].summary().mean_us)),
        "≤ 1.5×",
        Some(ratio <= 1.5),
    );
    r.headline(
        "1. wasm / native, duplicate (memory)",
        format!("{dratio:.1}× ({} vs {} µs)", us(dups[1].summary().mean_us), us(dups[0].summary().mean_us)),
        "≤ 1.5×",
        Some(dratio <= 1.5),
    );
    Ok(())
}

struct BenchState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BenchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn state() -> BenchState {
    BenchState { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new() }
}

#[derive(Clone, Copy)]
enum Alloc {
    /// wasmtime's default on-demand allocator: a fresh `mmap` per instance.
    OnDemand,
    /// What `host/src/runtime.rs` configures.
    Pooling,
    /// Pooling, and instance memory reset with `memset` instead of `madvise(DONTNEED)`, so a reused slot is not
    /// faulted in again on the next call.
    PoolingResident,
}

/// The host's engine configuration (`idem_host::engine_config`), or the same with another allocator.
fn engine(alloc: Alloc) -> Result<Engine> {
    let mut config = idem_host::engine_config();
    match alloc {
        Alloc::OnDemand => {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
        Alloc::Pooling => {}
        Alloc::PoolingResident => {
            let mut p = idem_host::pooling_config();
            p.linear_memory_keep_resident(1 << 20).table_keep_resident(64 << 10);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
    }
    w(Engine::new(&config))
}

/// wasmtime 48 has its own error type.
fn w<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Instantiation alone; with `Store::new` and drop; and a whole `status` call on an absent record (the store's
/// `get` answers `none` from a host function), as `idem_host::Guard::status` makes it.
fn per_call(alloc: Alloc, n: usize) -> Result<[Samples; 3]> {
    use wasmtime::component::Val;
    let engine = engine(alloc)?;
    let component = w(Component::new(&engine, idem_host::GUARD_WASM)).context("compiling")?;
    let mut linker = Linker::<BenchState>::new(&engine);
    w(wasmtime_wasi::p2::add_to_linker_sync(&mut linker))?;
    w(w(linker.instance("idem:guard/store@0.1.0"))?.func_new("get", |_, _, _, results| {
        results[0] = Val::Result(Ok(Some(Box::new(Val::Option(None)))));
        Ok(())
    }))?;
    w(linker.define_unknown_imports_as_traps(&component))?;
    let pre = w(linker.instantiate_pre(&component))?;
    let iface = component.get_export_index(None, "idem:guard/guard@0.1.0").context("no guard interface")?;
    let status = component.get_export_index(Some(&iface), "status").context("no status export")?;
    let op = Val::Record(vec![
        ("scope".into(), Val::String(crate::workload::SCOPE.into())),
        ("key".into(), Val::String("absent".into())),
    ]);
    let mut out: [Samples; 3] = Default::default();
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        let mut store = Store::new(&engine, state());
        store.set_epoch_deadline(1000);
        let t1 = Instant::now();
        let inst = w(pre.instantiate(&mut store))?;
        let t2 = Instant::now();
        drop(store);
        let t3 = Instant::now();
        let mut store = Store::new(&engine, state());
        store.set_epoch_deadline(1000);
        let inst2 = w(pre.instantiate(&mut store))?;
        let f = inst2.get_func(&mut store, status).context("status func")?;
        let mut results = [Val::Bool(false)];
        w(f.call(&mut store, std::slice::from_ref(&op), &mut results))?;
        drop(store);
        let t4 = Instant::now();
        std::hint::black_box((inst, results));
        if i >= n / 10 {
            for (s, d) in out.iter_mut().zip([t2 - t1, t3 - t0, t4 - t3]) {
                s.ns.push(d.as_nanos() as u64);
                s.busy += d;
                s.ops += 1;
            }
        }
    }
    Ok(out)
}

pub fn instantiation(r: &mut Report, s: &Scale, runtime: &idem_host::Runtime) -> Result<()> {
    r.section("2. per-call instantiation");
    let n = s.inst;
    let component_bytes = idem_host::GUARD_WASM;
    let mut rows = Vec::new();

    let mut ctx = Samples::with_capacity(n);
    for _ in 0..n {
        ctx.time(|| std::hint::black_box(state()));
    }
    rows.push(("`WasiCtxBuilder::new().build()` + `ResourceTable::new()`".to_string(), ctx.summary()));

    let mut on_demand = None;
    let mut pooled_summary = None;
    for (alloc, name) in [
        (Alloc::OnDemand, "on-demand allocator (wasmtime's default)"),
        (Alloc::Pooling, "pooling allocator (host config)"),
        (Alloc::PoolingResident, "pooling allocator, memory kept resident"),
    ] {
        match per_call(alloc, n) {
            Ok([only, with_store, call]) => {
                rows.push((format!("`InstancePre::instantiate`, {name}"), only.summary()));
                rows.push((format!("  `Store::new` + instantiate + drop, {name}"), with_store.summary()));
                rows.push((format!("  whole `status` call (absent record), {name}"), call.summary()));
                match alloc {
                    Alloc::OnDemand => on_demand = Some(only.summary()),
                    Alloc::Pooling => pooled_summary = Some(only.summary()),
                    Alloc::PoolingResident => {}
                }
            }
            Err(e) => r.line(format!("{name} failed: `{e:#}`\n")),
        }
    }
    let pooled = pooled_summary.context("the host configuration must instantiate")?;
    // The public API: `status` on an empty memory store is instantiate + one guest call + one store `get`.
    let guard = idem_host::Guard::builder().runtime(runtime.clone()).store(MemoryStore::new()).build()?;
    let native = crate::native::guard(Arc::new(MemoryStore::new()));
    let op = Wasm::op("absent");
    let nop = idem_component::types::Operation { scope: crate::workload::SCOPE.into(), key: "absent".into() };
    let sides = interleaved(2, n, 10, |v, _| match v {
        0 => {
            std::hint::black_box(native.status(&nop).ok());
        }
        _ => {
            std::hint::black_box(guard.status(&op).ok());
        }
    });
    rows.push(("native `status` (absent record)".into(), sides[0].summary()));
    rows.push(("`idem_host::Guard::status` (absent record): the whole per-call cost".into(), sides[1].summary()));
    r.line(format!(
        "Single thread, {n} of each after a warm-up. The component is {} bytes. The `InstancePre` rows build the host's engine configuration (`epoch_interruption`) in the benchmark, link WASI as the host does, answer the store's `get` with `none` from a host function and stub the other store imports; *whole `status` call* is `Store::new` + instantiate + one `status` export call + drop, i.e. what `idem_host::Guard::status` does per call. The pooling rows use the pool `host/src/runtime.rs` configures; the on-demand rows show what it saves.\n",
        component_bytes.len()
    ));
    r.table("step", &rows);
    r.headline(
        "2. instantiation from `InstancePre`, pooling allocator (host config), p50",
        format!("{} µs (p99 {} µs)", us(pooled.p50_us), us(pooled.p99_us)),
        "≤ 20 µs",
        Some(pooled.p50_us <= 20.0),
    );
    if let Some(od) = on_demand {
        r.headline(
            "2. instantiation with the on-demand allocator, p50",
            format!("{} µs (p99 {} µs)", us(od.p50_us), us(od.p99_us)),
            "-",
            None,
        );
    }
    let per_call = sides[1].summary().mean_us - sides[0].summary().mean_us;
    r.headline("2. fixed wasm cost per guard call (`status` wasm − native)", format!("{} µs", us(per_call)), "-", None);
    Ok(())
}
