//! Calls of one script gathered into batches: while a batch is on its way to Redis, the calls
//! made meanwhile wait for the next one, so a burst costs a few script calls, not one each.

use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};

use crate::error::Error;

/// Calls of one script that wait for the next batch: while a batch is on its way to Redis,
/// the calls made meanwhile gather for the next one, so a burst costs a few script calls.
pub(super) struct Batcher<const N: usize> {
    waiting: Mutex<Vec<Call<N>>>,
    ready: Notify,
}

/// One waiting call: its script arguments, and who waits for its code.
type Call<const N: usize> = ([String; N], oneshot::Sender<Result<i64, Error>>);

impl<const N: usize> Default for Batcher<N> {
    fn default() -> Self {
        Batcher { waiting: Mutex::default(), ready: Notify::new() }
    }
}

/// Most calls sent in one script call.
const BATCH: usize = 256;

impl<const N: usize> Batcher<N> {
    /// Queues one call's arguments and waits for its code.
    pub(super) async fn call(&self, args: [String; N]) -> Result<i64, Error> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push((args, reply));
            waiting.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
        answer.await.unwrap_or_else(|_| Err(Error::stopped()))
    }

    /// Sends the waiting calls, a batch at a time, through `send` (which answers one code per
    /// call); runs as long as the instance.
    pub(super) async fn run<F, Fut>(&self, send: F)
    where
        F: Fn(Vec<[String; N]>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<i64>, Error>>,
    {
        loop {
            self.ready.notified().await;
            loop {
                let batch: Vec<_> = {
                    let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                    let n = waiting.len().min(BATCH);
                    waiting.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let (args, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match send(args).await {
                    Ok(codes) => {
                        for (reply, code) in
                            replies.into_iter().zip(codes.into_iter().chain(std::iter::repeat(0)))
                        {
                            let _ = reply.send(Ok(code));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}
