//! The lease scripts against a real `redis-server`, step by step, each instance played by a
//! call: what two reapers, the instance that lost a lease and a reconcile each get to do.
//! Without `redis-server` the tests pass empty, except under `CI=true`, where they fail.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;

use super::scripts;

/// A private `redis-server` on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    conn: redis::Connection,
}

impl Server {
    fn start() -> Option<Server> {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).ok()?.port();
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            assert!(!ci, "redis-server is not installed");
            return None;
        };
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a client");
        let start = Instant::now();
        loop {
            if let Ok(conn) = client.get_connection_with_timeout(Duration::from_millis(200)) {
                return Some(Server { child, conn });
            }
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `REAP` as `instance`: the ids it adopted.
    fn reap(&mut self, instance: &str) -> Vec<String> {
        let reply: Vec<String> = redis::Script::new(scripts::REAP)
            .key(LEASES)
            .key(STATS)
            .arg(BASE)
            .arg(instance)
            .arg(60_000)
            .invoke(&mut self.conn)
            .expect("REAP");
        reply.chunks_exact(6).map(|f| f[0].clone()).collect()
    }

    /// `FINISH` as the reaper `instance`: a retry of attempt 1 of `ID` without backoff; its code.
    fn retry_now(&mut self, instance: &str) -> i64 {
        self.finish_retry(instance, "lost_retry")
    }

    /// `FINISH` as `instance`, with the kind of write given (`retry`: the holder's own; or
    /// `lost_retry`: a reaper's): a retry of attempt 1 of `ID` without backoff; its code.
    fn finish_retry(&mut self, instance: &str, kind: &str) -> i64 {
        let codes: Vec<i64> = redis::Script::new(scripts::FINISH)
            .key(LEASES)
            .key(STATS)
            .arg(BASE)
            .arg(instance)
            .arg(0)
            .arg(60_000)
            .arg(format!("{BASE}:done"))
            .arg(format!("{BASE}:wake"))
            .arg(ID)
            .arg("echo")
            .arg(1)
            .arg(kind)
            .arg("queued")
            .arg("")
            .arg("lease expired: instance ghost stopped renewing it")
            .arg("")
            .arg(0)
            .arg("")
            .arg("")
            .invoke(&mut self.conn)
            .expect("FINISH");
        codes[0]
    }

    fn field(&mut self, name: &str) -> Option<String> {
        self.conn.hget(format!("{BASE}:t:{ID}"), name).expect("HGET")
    }

    /// Workers' results dropped as stale, as `stats` counts them.
    fn stale_results(&mut self) -> Option<u64> {
        self.conn.hget(STATS, "stale_results").expect("HGET")
    }

    /// `RENEW` of attempt 1 of `ID` as `instance`: the tasks it no longer holds.
    fn renew(&mut self, instance: &str) -> Vec<(String, String)> {
        redis::Script::new(scripts::RENEW)
            .key(LEASES)
            .arg(60_000)
            .arg(BASE)
            .arg(instance)
            .arg(ID)
            .arg(1)
            .invoke(&mut self.conn)
            .expect("RENEW")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BASE: &str = "{wp}";
const LEASES: &str = "{wp}:leases";
const STATS: &str = "{wp}:stats";
const ID: &str = "t1";

/// Plants `ID` as instance `ghost` left it: running attempt 1, its lease over long ago.
fn plant_lost(redis: &mut Server) {
    let fields = [
        ("id", ID),
        ("type", "echo"),
        ("priority", "0"),
        ("max_retries", "3"),
        ("attempts", "1"),
        ("status", "running"),
        ("member", "1700000000000000000:t1"),
        ("instance", "ghost"),
    ];
    let () = redis.conn.hset_multiple(format!("{BASE}:t:{ID}"), &fields).expect("HSET");
    let () = redis.conn.zadd(LEASES, ID, 1).expect("ZADD");
}

#[test]
fn only_one_of_two_reapers_adopts_a_lease_and_only_it_ends_the_attempt() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    assert_eq!(redis.reap("r1"), [ID]);
    // Adopted for a whole lease: the second reaper finds nothing to reap.
    assert!(redis.reap("r2").is_empty());
    assert_eq!(redis.field("reaper").as_deref(), Some("r1"));
    assert_eq!(
        (redis.field("status").as_deref(), redis.field("instance").as_deref()),
        (Some("running"), Some("ghost"))
    );
    // The reaper that did not adopt it cannot write a verdict: stale, nothing changed.
    assert_eq!(redis.retry_now("r2"), -1);
    assert_eq!(redis.field("status").as_deref(), Some("running"));
    // The one that did queues it again at the head, the attempt spent, and lets it go.
    assert_eq!(redis.retry_now("r1"), 1);
    assert_eq!(redis.field("status").as_deref(), Some("queued"));
    assert_eq!(redis.field("attempts").as_deref(), Some("1"));
    assert_eq!(redis.field("reaper"), None);
    let queue: Vec<String> = redis.conn.zrange(format!("{BASE}:q:echo"), 0, -1).expect("ZRANGE");
    assert_eq!(queue, ["!1700000000000000000:t1"]);
    assert_eq!(redis.conn.zcard::<_, usize>(LEASES).expect("ZCARD"), 0);
    // Written once: the same reaper's verdict again is no longer its to write.
    assert_eq!(redis.retry_now("r1"), -1);
    assert_eq!(queue.len(), redis.conn.zcard::<_, usize>(format!("{BASE}:q:echo")).expect("ZCARD"));
}

#[test]
fn an_adopted_lease_is_not_the_reapers_to_reconcile_and_the_instance_that_lost_it_takes_it_back() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    assert_eq!(redis.reap("r1"), [ID]);
    // The reaper holds nothing: its reconcile must not send the adopted task back unspent.
    let sent: u64 = redis::Script::new(scripts::RECONCILE)
        .key(LEASES)
        .arg(BASE)
        .arg("r1")
        .invoke(&mut redis.conn)
        .expect("RECONCILE");
    assert_eq!(sent, 0);
    assert_eq!(redis.field("status").as_deref(), Some("running"));
    assert_eq!(redis.retry_now("r1"), 1);
    // `ghost` was only cut off: its renewal takes back the task nobody took since.
    let lost: Vec<(String, String)> = redis::Script::new(scripts::RENEW)
        .key(LEASES)
        .arg(60_000)
        .arg(BASE)
        .arg("ghost")
        .arg(ID)
        .arg(1)
        .invoke(&mut redis.conn)
        .expect("RENEW");
    assert!(lost.is_empty(), "{lost:?}");
    assert_eq!(
        (redis.field("status").as_deref(), redis.field("attempts").as_deref()),
        (Some("running"), Some("1"))
    );
    assert_eq!(redis.conn.zcard::<_, usize>(format!("{BASE}:q:echo")).expect("ZCARD"), 0);
}

#[test]
fn a_reaper_that_never_wrote_its_verdict_leaves_the_task_to_the_next_reap() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    assert_eq!(redis.reap("r1"), [ID]);
    // `r1` died: its adopted lease runs out in turn (here: moved to the past).
    let () = redis.conn.zadd(LEASES, ID, 1).expect("ZADD");
    assert_eq!(redis.reap("r2"), [ID]);
    assert_eq!(redis.field("reaper").as_deref(), Some("r2"));
    // `r1`, had it only stalled, can no longer write; `r2` can.
    assert_eq!(redis.retry_now("r1"), -1);
    assert_eq!(redis.retry_now("r2"), 1);
    assert_eq!(redis.field("status").as_deref(), Some("queued"));
}

#[test]
fn a_holder_that_renews_after_all_voids_the_reap() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    assert_eq!(redis.reap("r1"), [ID]);
    // `ghost` was only slow: it renews before the reaper writes, and keeps its attempt.
    assert!(redis.renew("ghost").is_empty());
    assert_eq!(redis.field("reaper"), None);
    // The reaper's verdict is stale now; a reaper's lost claim is no dropped result.
    assert_eq!(redis.retry_now("r1"), -1);
    assert_eq!(
        (redis.field("status").as_deref(), redis.field("instance").as_deref()),
        (Some("running"), Some("ghost"))
    );
    assert_eq!(redis.stale_results(), None);
    assert_eq!(redis.conn.zcard::<_, usize>(format!("{BASE}:q:echo")).expect("ZCARD"), 0);
    // A reaper's kind of write is a reaper's only: the holder's own write still counts.
    assert_eq!(redis.finish_retry("ghost", "lost_retry"), -1);
}

#[test]
fn a_holders_retry_due_at_once_goes_back_to_its_own_place_and_a_strangers_result_is_stale() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    let queue = format!("{BASE}:q:echo");
    let () = redis.conn.zadd(&queue, "1600000000000000000:older", 0).expect("ZADD");
    let () = redis.conn.zadd(&queue, "1800000000000000000:newer", 0).expect("ZADD");
    // Another instance's result for the attempt is stale, and counted as such.
    assert_eq!(redis.finish_retry("stranger", "retry"), -1);
    assert_eq!(redis.stale_results(), Some(1));
    // The holder's retry without backoff: between the older and the newer task, not first.
    assert_eq!(redis.finish_retry("ghost", "retry"), 1);
    let order: Vec<String> = redis.conn.zrange(&queue, 0, -1).expect("ZRANGE");
    assert_eq!(order, ["1600000000000000000:older", "1700000000000000000:t1", "1800000000000000000:newer"]);
    assert_eq!(redis.field("member").as_deref(), Some("1700000000000000000:t1"));
}

#[test]
fn a_progress_report_that_comes_after_the_end_changes_nothing() {
    let Some(mut redis) = Server::start() else { return };
    plant_lost(&mut redis);
    let progress = |redis: &mut Server, report: &str| {
        let () = redis::Script::new(scripts::PROGRESS)
            .key(format!("{BASE}:t:{ID}"))
            .arg(report)
            .arg("w1")
            .invoke(&mut redis.conn)
            .expect("PROGRESS");
    };
    progress(&mut redis, r#"{"progress":30}"#);
    assert_eq!(redis.field("progress").as_deref(), Some(r#"{"progress":30}"#));
    let () = redis.conn.hset(format!("{BASE}:t:{ID}"), "status", "completed").expect("HSET");
    progress(&mut redis, r#"{"progress":10}"#);
    assert_eq!(redis.field("progress").as_deref(), Some(r#"{"progress":30}"#));
    // Nor does it make a record.
    let () = redis.conn.del(format!("{BASE}:t:{ID}")).expect("DEL");
    progress(&mut redis, r#"{"progress":50}"#);
    assert_eq!(redis.field("status"), None);
}
