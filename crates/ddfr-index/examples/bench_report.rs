//! Prints `ddfr_index::bench::bench_report` (or an IVF parameter sweep) as a Markdown table.
//!
//! `cargo run --release -p ddfr-index --example bench_report -- [report|sweep|sketch] [sizes] [queries]`
//! where `sizes` is a comma-separated list (default `1000,100000,1000000`) and `queries` the
//! number of noisy and of random queries (default 500). `sweep` takes one size.
#![allow(clippy::print_stdout)]

use ddfr_index::bench::{BenchRow, bench_report, ivf_sweep};

/// The default embedder's dimension.
const DIM: usize = 128;
/// Seed of the generated gallery and queries, fixed so runs are comparable.
const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("report", String::as_str);
    let sizes: Vec<usize> = args
        .get(1)
        .map_or("1000,100000,1000000", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let n_queries: usize = args.get(2).map_or(Ok(500), |q| q.parse())?;
    let rows = if mode == "sketch" {
        let n = sizes.first().copied().unwrap_or(1_000_000);
        let data = ddfr_index::bench::Dataset::generate(n, DIM, n_queries, SEED)?;
        [512, 1024, 2048, 4096]
            .into_iter()
            .map(|shortlist| data.measure_sketch(Some(shortlist)))
            .collect::<Result<Vec<_>, _>>()?
    } else if mode == "sweep" {
        let n = sizes.first().copied().unwrap_or(1_000_000);
        let root = (n as f64).sqrt() as usize;
        let lists = [root / 2, root, root * 2];
        ivf_sweep(n, DIM, n_queries, SEED, &lists, &[8, 16, 32, 48, 64, 96, 128])?
    } else {
        bench_report(&sizes, DIM, n_queries, SEED)?
    };
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[BenchRow]) {
    println!(
        "| kind | n | n_lists | nprobe | build ms | p50 µs | p99 µs | cpu mean µs | recall@1 noisy | recall@1 random | memory MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let show = |value: Option<usize>| value.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.4} | {:.4} | {:.1} |",
            row.kind,
            row.n,
            show(row.n_lists),
            show(row.nprobe),
            row.build_ms,
            row.p50_us,
            row.p99_us,
            row.cpu_mean_us.map_or("-".to_owned(), |cpu| format!("{cpu:.0}")),
            row.recall_noisy,
            row.recall_random,
            row.memory_bytes as f64 / (1024.0 * 1024.0),
        );
    }
}
