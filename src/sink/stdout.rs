//! `stdout`: JSON Lines on standard output (logs go to standard error).

use tokio::io::AsyncWriteExt;

use super::SinkError;

pub struct StdoutOutput {
    out: tokio::io::Stdout,
}

impl StdoutOutput {
    pub fn new() -> Self {
        StdoutOutput { out: tokio::io::stdout() }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let result = async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        };
        result.await.map_err(|source| SinkError::Write { path: "<stdout>".into(), source })
    }

    pub async fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().await.map_err(|source| SinkError::Write { path: "<stdout>".into(), source })
    }
}

impl Default for StdoutOutput {
    fn default() -> Self {
        Self::new()
    }
}
