//! Calls of one script gathered into batches: while a batch is on its way to Redis, the calls
//! made meanwhile wait for the next one, so a burst costs a few script calls, not one each.

use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};

use crate::error::{Error, ErrorKind};

/// One call of a batched script: a script call carries the batch's common arguments, then
/// those of each call, one after the other.
pub(super) trait BatchCall {
    /// What the script answers for this call.
    type Reply;

    /// Appends this call's arguments, as many as the script reads per call.
    fn push_args(&self, script: &mut redis::ScriptInvocation<'_>);
}

/// Calls of one script that wait for the next batch: while a batch is on its way to Redis,
/// the calls made meanwhile gather for the next one, so a burst costs a few script calls.
pub(super) struct Batcher<C: BatchCall> {
    waiting: Mutex<Vec<Waiting<C>>>,
    ready: Notify,
}

/// One waiting call, and who waits for its reply.
type Waiting<C> = (C, oneshot::Sender<Result<<C as BatchCall>::Reply, Error>>);

impl<C: BatchCall> Default for Batcher<C> {
    fn default() -> Self {
        Batcher { waiting: Mutex::default(), ready: Notify::new() }
    }
}

/// Most calls sent in one script call.
const BATCH: usize = 256;

impl<C: BatchCall> Batcher<C> {
    /// Queues one call and waits for its reply.
    pub(super) async fn call(&self, call: C) -> Result<C::Reply, Error> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push((call, reply));
            waiting.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
        answer.await.unwrap_or_else(|_| Err(Error::stopped()))
    }

    /// Sends the waiting calls, a batch at a time, through `send` (which answers one reply per
    /// call, in order); runs as long as the instance.
    pub(super) async fn run<F, Fut>(&self, send: F)
    where
        F: Fn(Vec<C>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<C::Reply>, Error>>,
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
                let (calls, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let sent = waiters.len();
                match send(calls).await {
                    Ok(replies) => {
                        let answered = replies.len();
                        let mut replies = replies.into_iter();
                        for waiter in waiters {
                            // The scripts answer every call; fewer replies is a script's bug.
                            let reply = replies.next().ok_or_else(|| {
                                Error::new(
                                    ErrorKind::Internal,
                                    format!("a batched script answered {answered} of {sent} calls"),
                                )
                            });
                            let _ = waiter.send(reply);
                        }
                    }
                    Err(e) => {
                        for waiter in waiters {
                            let _ = waiter.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct Double(u32);

    impl BatchCall for Double {
        type Reply = u32;

        fn push_args(&self, script: &mut redis::ScriptInvocation<'_>) {
            script.arg(self.0);
        }
    }

    #[tokio::test]
    async fn each_call_gets_its_own_reply_and_missing_ones_are_errors() {
        let batcher = Arc::new(Batcher::<Double>::default());
        let runner = batcher.clone();
        tokio::spawn(async move {
            runner
                .run(|calls| async move {
                    // The first call of a batch is answered, the others are not.
                    Ok(calls.iter().take(1).map(|Double(n)| n * 2).collect())
                })
                .await
        });
        assert_eq!(batcher.call(Double(21)).await, Ok(42));
        let (a, b) = {
            let waiting = [batcher.call(Double(1)), batcher.call(Double(2))];
            let [a, b] = waiting;
            tokio::join!(a, b)
        };
        assert_eq!(a, Ok(2));
        // Both were in one batch, or each in its own: either way the reply is its own.
        match b {
            Ok(n) => assert_eq!(n, 4),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
        }
    }
}
