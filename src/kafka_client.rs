//! What every Kafka client (the source, the Kafka sink, a Kafka dead-letter sink)
//! shares: TLS and SASL settings as named keys, and the check at start that
//! turns a wrong CA, a wrong password or a plaintext broker behind a TLS config
//! into one clear error within seconds instead of librdkafka's endless retries.
//!
//! ```yaml
//! tls:  {ca_file: ca.pem, cert_file: client.pem, key_file: client.key}
//! sasl: {mechanism: SCRAM-SHA-512, username: telemetry, password: ${KAFKA_PASSWORD}}
//! ```
//! `security.protocol` follows from them (SSL, SASL_SSL, SASL_PLAINTEXT); raw
//! librdkafka `properties` are applied after and win.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use crate::decode::secret::Secret;
use crate::decode::{one_of, Diagnostics, MapReader};

/// How long the start-up check waits for the brokers before it lets librdkafka
/// keep trying (an unreachable broker is transient; a refused handshake is not).
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaSecurity {
    pub(crate) tls: Option<KafkaTls>,
    pub(crate) sasl: Option<KafkaSasl>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaTls {
    /// CA certificates (PEM) the brokers' certificates must chain to; absent:
    /// the system's trust store.
    pub(crate) ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) key_password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSasl {
    pub(crate) mechanism: &'static str,
    pub(crate) username: String,
    pub(crate) password: Secret,
}

impl KafkaSecurity {
    /// The optional `tls` and `sasl` keys of a Kafka section.
    pub(crate) fn decode(map: &mut MapReader<'_>, what: &str, cx: &mut Diagnostics) -> KafkaSecurity {
        let tls = map.node("tls").and_then(|node| {
            let label = format!("{what} tls");
            let mut tls = MapReader::new(node, &label, cx)?;
            let config = KafkaTls {
                ca_file: tls.optional::<String>("ca_file", cx).map(PathBuf::from),
                cert_file: tls.optional::<String>("cert_file", cx).map(PathBuf::from),
                key_file: tls.optional::<String>("key_file", cx).map(PathBuf::from),
                key_password: tls.optional("key_password", cx),
            };
            let pos = tls.pos();
            tls.finish(cx);
            if config.cert_file.is_some() != config.key_file.is_some() {
                cx.error(pos, format!("{label}: cert_file and key_file go together"));
            }
            for (file, key) in [
                (&config.ca_file, "ca_file"),
                (&config.cert_file, "cert_file"),
                (&config.key_file, "key_file"),
            ] {
                if let Some(path) = file {
                    if let Err(e) = std::fs::metadata(path) {
                        cx.error(pos, format!("{label}: {key} `{}`: {e}", path.display()));
                    }
                }
            }
            Some(config)
        });
        let sasl = map.node("sasl").and_then(|node| {
            let label = format!("{what} sasl");
            let mut sasl = MapReader::new(node, &label, cx)?;
            let mechanisms =
                [("PLAIN", "PLAIN"), ("SCRAM-SHA-256", "SCRAM-SHA-256"), ("SCRAM-SHA-512", "SCRAM-SHA-512")];
            let mechanism = match sasl.node("mechanism") {
                Some(n) => one_of(n, &mechanisms, cx),
                None => {
                    cx.error(sasl.pos(), format!("{label} is missing required key `mechanism`"));
                    None
                }
            };
            let username: Option<String> = sasl.required("username", cx);
            let password: Option<Secret> = sasl.required("password", cx);
            sasl.finish(cx);
            Some(KafkaSasl { mechanism: mechanism?, username: username?, password: password? })
        });
        KafkaSecurity { tls, sasl }
    }

    /// Sets the librdkafka properties these settings stand for.
    pub(crate) fn apply(&self, client: &mut ClientConfig) {
        let protocol = match (&self.tls, &self.sasl) {
            (Some(_), Some(_)) => "SASL_SSL",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (None, None) => return,
        };
        client.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            // Hostname verification stays on (librdkafka's default `https`).
            client.set("ssl.endpoint.identification.algorithm", "https");
            let path = |p: &PathBuf| p.display().to_string();
            if let Some(ca) = &tls.ca_file {
                client.set("ssl.ca.location", path(ca));
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                client.set("ssl.certificate.location", path(cert)).set("ssl.key.location", path(key));
            }
            if let Some(password) = &tls.key_password {
                client.set("ssl.key.password", password.expose());
            }
        }
        if let Some(sasl) = &self.sasl {
            client
                .set("sasl.mechanism", sasl.mechanism)
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
    }
}

/// Whether a librdkafka configuration turns on TLS or SASL (named keys or raw
/// properties): only then is the start-up check worth its seconds.
pub(crate) fn is_secured(client: &ClientConfig) -> bool {
    client.get("security.protocol").is_some_and(|p| !p.eq_ignore_ascii_case("plaintext"))
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot create the Kafka client: {0}")]
    Create(String),
}

/// Records the first error that says the connection itself is refused.
#[derive(Default)]
struct Probe {
    refusal: Mutex<Option<String>>,
}

impl Probe {
    /// Keeps `reason` when it says the connection itself was refused.
    fn consider(&self, reason: &str, code: Option<RDKafkaErrorCode>) {
        let fatal = matches!(
            code,
            Some(RDKafkaErrorCode::SSL)
                | Some(RDKafkaErrorCode::Authentication)
                | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
                | Some(RDKafkaErrorCode::UnsupportedSASLMechanism)
                | Some(RDKafkaErrorCode::IllegalSASLState)
        ) || reason.contains("SSL handshake failed")
            // A TLS alert after the handshake: TLS 1.3 servers refuse a missing
            // client certificate on the first read ("alert certificate required").
            || reason.contains("SSL routines")
            // No answer to the TLS hello: a plaintext listener.
            || reason.contains("in state SSL_HANDSHAKE")
            || reason.contains("SASL authentication error");
        if fatal {
            let mut slot = match self.refusal.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            slot.get_or_insert_with(|| describe_refusal(reason));
        }
    }
}

impl ClientContext for Probe {
    /// A handshake that times out is only logged by librdkafka (`FAIL`); the
    /// error callback then says no more than "all brokers are down".
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility.contains("FAIL") {
            self.consider(message, None);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.consider(reason, error.rdkafka_error_code());
    }
}

impl ProducerContext for Probe {
    type DeliveryOpaque = ();

    /// The probe sends nothing.
    fn delivery(&self, _result: &DeliveryResult<'_>, _opaque: ()) {}
}

/// librdkafka's reason, trimmed of its broker prefix and state suffix, with a
/// hint for the common causes.
fn describe_refusal(reason: &str) -> String {
    // Log lines carry `[thrd:…]: ` and then the broker, errors the broker alone.
    let mut reason = reason;
    for _ in 0..2 {
        reason = reason.split_once(": ").filter(|(head, _)| head.contains("://")).map_or(reason, |(_, r)| r);
    }
    let reason = reason.split(" (after ").next().unwrap_or(reason).trim();
    let hint = if reason.contains("certificate required") {
        " — the broker requires a client certificate: set tls.cert_file and tls.key_file"
    } else if reason.contains("certificate verify failed") {
        " — the broker's certificate does not chain to tls.ca_file (or does not name the host)"
    } else if reason.contains("PLAINTEXT")
        || reason.contains("wrong version number")
        || reason.contains("in state SSL_HANDSHAKE")
    {
        " — the broker does not speak TLS on this port; remove `tls` or use its TLS listener"
    } else if reason.contains("SASL") {
        " — check sasl.username, sasl.password and sasl.mechanism"
    } else {
        ""
    };
    crate::decode::secret::mask(&format!("{reason}{hint}")).into_owned()
}

/// [`check_connection`] off the async threads, when `client` turns on TLS or
/// SASL; the refusal as a message.
pub(crate) async fn check_if_secured(client: ClientConfig, who: &'static str) -> Result<(), String> {
    if !is_secured(&client) {
        return Ok(());
    }
    match tokio::task::spawn_blocking(move || check_connection(&client, who)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("connection check failed: {e}")),
    }
}

/// Connects with `client`'s settings and asks for metadata. A refused TLS
/// handshake or SASL authentication fails at once with its reason; brokers that
/// are merely unreachable for [`CHECK_TIMEOUT`] are left to librdkafka's retries
/// (logged). Blocking: call it off the async threads.
pub(crate) fn check_connection(client: &ClientConfig, who: &str) -> Result<(), CheckError> {
    let mut probe = client.clone();
    // The check's own client: quick reconnects, no delivery of anything.
    probe.set("reconnect.backoff.ms", "100").set("reconnect.backoff.max.ms", "1000");
    // A TLS client at a plaintext port gets no answer to its hello (the broker
    // waits for the rest of what it reads as a request): bound the handshake so
    // that this shows within the check.
    probe.set("socket.connection.setup.timeout.ms", "5000");
    for key in [
        "transactional.id",
        "enable.idempotence",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "partition.assignment.strategy",
        "queued.max.messages.kbytes",
        "statistics.interval.ms",
        "linger.ms",
        "compression.type",
    ] {
        probe.remove(key);
    }
    let producer: BaseProducer<Probe> =
        probe.create_with_context(Probe::default()).map_err(|e| CheckError::Create(e.to_string()))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    loop {
        producer.poll(Duration::from_millis(100));
        if let Some(reason) = producer.context().refusal.lock().ok().and_then(|r| r.clone()) {
            return Err(CheckError::Refused(reason));
        }
        if producer.client().fetch_metadata(None, Duration::from_millis(500)).is_ok() {
            // A broker may answer metadata before SASL fails on another connection.
            producer.poll(Duration::from_millis(50));
            if let Some(reason) = producer.context().refusal.lock().ok().and_then(|r| r.clone()) {
                return Err(CheckError::Refused(reason));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "{who}: no Kafka broker answered within {}s; librdkafka keeps trying",
                CHECK_TIMEOUT.as_secs()
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_trimmed_and_explained() {
        let logged = describe_refusal("[thrd:ssl://h:1/bootstrap]: ssl://h:1/bootstrap: Connection setup timed out in state SSL_HANDSHAKE (after 5006ms in state SSL_HANDSHAKE)");
        assert!(
            logged.starts_with(
                "Connection setup timed out in state SSL_HANDSHAKE — the broker does not speak TLS"
            ),
            "{logged}"
        );
        let text = describe_refusal("ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified (after 3ms in state SSL_HANDSHAKE)");
        assert!(text.starts_with("SSL handshake failed"), "{text}");
        assert!(text.contains("tls.ca_file"), "{text}");
        assert!(!text.contains("after 3ms"), "{text}");
    }

    #[test]
    fn named_keys_set_the_protocol() {
        let security = KafkaSecurity {
            tls: Some(KafkaTls { ca_file: Some("ca.pem".into()), ..KafkaTls::default() }),
            sasl: Some(KafkaSasl {
                mechanism: "SCRAM-SHA-512",
                username: "u".into(),
                password: Secret::new("p4ssword".into()),
            }),
        };
        let mut client = ClientConfig::new();
        security.apply(&mut client);
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("ssl.ca.location"), Some("ca.pem"));
        assert!(is_secured(&client));
    }
}
