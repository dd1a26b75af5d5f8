//! The connection to Redis: the client for the configured URL (and certificates), and every
//! command's way through the link's state ([`Link`](super::link::Link)): refused at once
//! while Redis is known to be down ([`Remote::gated`]), its outcome noted once it returns
//! ([`Remote::observe`]).

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{Remote, outcome};
use crate::config::RedisConfig;
use crate::error::{Error, ErrorKind};
use crate::redact;

/// A client for the configured URL, with the configured certificates for `rediss://`.
pub(super) fn client_for(cfg: &RedisConfig) -> Result<redis::Client, Error> {
    let url = cfg.url.as_ref().map(redact::SecretUrl::expose).unwrap_or_default();
    let bad_url =
        |e: redis::RedisError| Error::new(ErrorKind::Config, format!("redis.url: {}", describe(cfg, &e)));
    if cfg.tls_ca_file.is_none() && cfg.tls_cert_file.is_none() {
        return redis::Client::open(url).map_err(bad_url);
    }
    if !url.starts_with("rediss://") {
        return Err(Error::new(ErrorKind::Config, "redis.tls_ca_file: TLS files need a rediss:// URL"));
    }
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::new(ErrorKind::Config, format!("redis.{key}: cannot read {}: {e}", path.display()))
        })
    };
    let root_cert = cfg.tls_ca_file.as_deref().map(|p| read("tls_ca_file", p)).transpose()?;
    let client_tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("tls_cert_file", cert)?,
            client_key: read("tls_key_file", key)?,
        }),
        _ => None,
    };
    redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls, root_cert }).map_err(bad_url)
}

/// A Redis error as it may be shown (logged, answered, kept as the link's reason): without
/// the password, should the error echo the URL or the password.
pub(super) fn describe(cfg: &RedisConfig, e: &redis::RedisError) -> String {
    let text = e.to_string();
    let secrets = cfg.url.as_ref().map(redact::SecretUrl::secrets).unwrap_or_default();
    redact::scrub(&text, &secrets).into_owned()
}

impl Remote {
    /// The client, for connections of their own (the listener's subscription).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection, whatever the link's state: only for the heartbeat's probe.
    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The connection, unless Redis is known to be down: then the command is refused at once
    /// and nothing is sent. The heartbeat's probe alone goes through ([`Remote::conn`]).
    pub(super) fn gated(&self) -> Result<ConnectionManager, Error> {
        self.link.check()?;
        Ok(self.conn())
    }

    /// Notes how a command went in the link's state: Redis answered, or is down.
    pub(crate) fn observe<T>(&self, result: redis::RedisResult<T>) -> Result<T, Error> {
        match result {
            Ok(v) => {
                self.link.answered();
                Ok(v)
            }
            // Unreachable, or refusing this client (a wrong password): Redis is down for us.
            Err(e)
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error() =>
            {
                let why = describe(&self.cfg, &e);
                let error = Error::new(ErrorKind::Unavailable, format!("Redis unavailable: {why}"));
                self.link.failed(why);
                Err(error)
            }
            // One command refused (still loading, out of memory, a script error on odd data):
            // not the caller's fault, and not a sign that Redis is gone.
            Err(e) => {
                let why = describe(&self.cfg, &e);
                log::warn!("Redis refused a command: {why}");
                Err(Error::new(ErrorKind::Unavailable, format!("Redis refused the command: {why}")))
            }
        }
    }

    /// As [`Remote::observe`], for a write: a failure after which the write may have been
    /// done is [`ErrorKind::OutcomeUnknown`] (see [`outcome`]).
    pub(super) fn observe_write<T>(&self, result: redis::RedisResult<T>) -> Result<T, Error> {
        let fate = result.as_ref().err().map(outcome::fate_of);
        self.observe(result).map_err(|e| match fate {
            Some(outcome::Fate::Unknown) => Error::new(ErrorKind::OutcomeUnknown, e.message()),
            _ => e,
        })
    }

    /// Whether Redis answers.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        self.observe(redis::cmd("PING").query_async::<()>(&mut self.conn()).await)
    }

    /// `None` while Redis answers (or before it was first asked); why not otherwise.
    pub(crate) fn down(&self) -> Option<String> {
        self.link.down()
    }

    /// Waits at most `limit` for Redis to answer again; says whether it does.
    pub(crate) async fn until_up(&self, limit: Duration) -> bool {
        self.link.until_up(limit).await
    }
}
