//! Throughput of the simulator (ignored by default):
//! `cargo test --release --test sim_bench -- --ignored --nocapture`

mod sim_util;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_requests_per_second() {
    let sim = sim_util::fast_sim().await;
    let c = sim_util::client(&sim);
    for i in 0..20 {
        c.create_ct("pve1", 100 + i, &[]).await;
    }
    for path in [
        "/nodes/pve1/lxc/105/config",
        "/cluster/resources",
        "/nodes/pve1/lxc/105/status/current",
    ] {
        let start = Instant::now();
        let dur = Duration::from_secs(3);
        let mut handles = Vec::new();
        for _ in 0..8 {
            let http = c.http.clone();
            let url = format!("{}/api2/json{path}", sim.base_url());
            let auth = sim.token_header();
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < dur {
                    let r = http.get(&url).header("Authorization", &auth).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        println!(
            "GET {path}: {:.0} req/s (8 keep-alive connections)",
            total as f64 / start.elapsed().as_secs_f64()
        );
    }
    sim.shutdown().await;
}
