//! `stdout`: JSON Lines on standard output (logs go to standard error).

use tokio::io::AsyncWriteExt;

use super::{Encoded, SinkError, SinkKind, Write};
use crate::decode::{Diagnostics, MapReader};

/// `type: stdout` has no keys of its own.
#[derive(Debug, Clone, Default)]
pub struct StdoutConfig;

impl SinkKind for StdoutConfig {
    type Output = StdoutOutput;

    fn decode(_: &mut MapReader<'_>, _: &mut Diagnostics) -> Option<Self> {
        Some(StdoutConfig)
    }

    fn describe(&self) -> String {
        "this terminal".to_string()
    }

    async fn open(&self, _cx: &super::OpenContext<'_>) -> Result<StdoutOutput, SinkError> {
        Ok(StdoutOutput::new())
    }
}

impl Write for StdoutOutput {
    async fn write(&mut self, batch: &Encoded<'_>) -> Result<(), SinkError> {
        self.write(batch.buf).await
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.flush().await
    }
}

pub(crate) struct StdoutOutput {
    out: tokio::io::Stdout,
}

impl StdoutOutput {
    pub(crate) fn new() -> Self {
        StdoutOutput { out: tokio::io::stdout() }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let result = async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        };
        result.await.map_err(|source| SinkError::Write { path: "<stdout>".into(), source })
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().await.map_err(|source| SinkError::Write { path: "<stdout>".into(), source })
    }
}

impl Default for StdoutOutput {
    fn default() -> Self {
        Self::new()
    }
}
