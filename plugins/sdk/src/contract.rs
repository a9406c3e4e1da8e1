//! The batch contract of `plugins/wit/plugin.wit` as plain Rust, used by both sides:
//! the guest glue reads batches and writes verdicts with it, the host writes batches
//! and reads verdicts with it. Keeping both in one place keeps them in step.

use std::fmt;

/// Verdict codes on the wire.
pub const KEEP: u8 = 0;
pub const DROP: u8 = 1;
pub const REPLACE: u8 = 2;

/// What a plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
    /// The event's new bytes: one JSON object of schema v1.0.
    Replace(Vec<u8>),
}

/// A batch or a verdict list that breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError(pub String);

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContractError {}

/// Host side: the batch buffer and its offset table, reused from batch to batch.
#[derive(Debug, Default)]
pub struct BatchBuffer {
    pub data: Vec<u8>,
    pub offsets: Vec<u32>,
}

impl BatchBuffer {
    pub fn clear(&mut self) {
        self.data.clear();
        self.offsets.clear();
        self.offsets.push(0);
    }

    /// Appends one event. Fails when the buffer would pass 4 GiB, which the u32
    /// offsets cannot address.
    pub fn push(&mut self, event: &[u8]) -> Result<(), ContractError> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(event);
        let end = u32::try_from(self.data.len())
            .map_err(|_| ContractError("batch is larger than 4 GiB".to_string()))?;
        self.offsets.push(end);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Guest side: the events of a batch, checked against the offset table.
pub fn events<'a>(data: &'a [u8], offsets: &'a [u32]) -> Result<Vec<&'a [u8]>, ContractError> {
    if offsets.first().is_some_and(|&first| first != 0) {
        return Err(ContractError("batch offsets must start at 0".to_string()));
    }
    offsets
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let (start, end) = (pair[0] as usize, pair[1] as usize);
            data.get(start..end).ok_or_else(|| {
                ContractError(format!(
                    "batch offset table is broken at event {i}: {start}..{end} of {}",
                    data.len()
                ))
            })
        })
        .collect()
}

/// Guest side: verdicts as they cross back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerdictList {
    pub codes: Vec<u8>,
    pub replacements: Vec<u8>,
    pub replacement_ends: Vec<u32>,
}

impl VerdictList {
    pub fn with_capacity(events: usize) -> Self {
        VerdictList { codes: Vec::with_capacity(events), ..VerdictList::default() }
    }

    pub fn push(&mut self, verdict: Verdict) -> Result<(), ContractError> {
        match verdict {
            Verdict::Keep => self.codes.push(KEEP),
            Verdict::Drop => self.codes.push(DROP),
            Verdict::Replace(bytes) => {
                self.codes.push(REPLACE);
                self.replacements.extend_from_slice(&bytes);
                let end = u32::try_from(self.replacements.len())
                    .map_err(|_| ContractError("replacements are larger than 4 GiB".to_string()))?;
                self.replacement_ends.push(end);
            }
        }
        Ok(())
    }

    /// Host side: one verdict per event, checked against the batch size. The
    /// replaced bytes are borrowed from the list.
    pub fn read(&self, events: usize) -> Result<Vec<VerdictRef<'_>>, ContractError> {
        if self.codes.len() != events {
            return Err(ContractError(format!(
                "plugin returned {} verdicts for a batch of {events} events",
                self.codes.len()
            )));
        }
        let mut ends = self.replacement_ends.iter();
        let mut start = 0usize;
        let verdicts = self
            .codes
            .iter()
            .enumerate()
            .map(|(i, &code)| match code {
                KEEP => Ok(VerdictRef::Keep),
                DROP => Ok(VerdictRef::Drop),
                REPLACE => {
                    let end = *ends.next().ok_or_else(|| {
                        ContractError(format!("event {i} is replaced but no replacement bytes follow"))
                    })? as usize;
                    let bytes = self.replacements.get(start..end).ok_or_else(|| {
                        ContractError(format!("replacement of event {i} is out of bounds: {start}..{end}"))
                    })?;
                    start = end;
                    Ok(VerdictRef::Replace(bytes))
                }
                other => Err(ContractError(format!("event {i}: unknown verdict code {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ends.next().is_some() {
            return Err(ContractError("more replacements than replaced events".to_string()));
        }
        Ok(verdicts)
    }
}

/// A verdict read by the host, borrowing the replacement bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictRef<'a> {
    Keep,
    Drop,
    Replace(&'a [u8]),
}

impl VerdictRef<'_> {
    /// The verdict with its replacement bytes copied out of the list.
    pub fn to_verdict(self) -> Verdict {
        match self {
            VerdictRef::Keep => Verdict::Keep,
            VerdictRef::Drop => Verdict::Drop,
            VerdictRef::Replace(bytes) => Verdict::Replace(bytes.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_and_its_verdicts_round_trip() {
        let mut batch = BatchBuffer::default();
        batch.clear();
        for event in [&b"{\"a\":1}"[..], b"{}", b"{\"b\":2}"] {
            batch.push(event).expect("small batch");
        }
        let events = events(&batch.data, &batch.offsets).expect("valid table");
        assert_eq!(events, vec![&b"{\"a\":1}"[..], b"{}", b"{\"b\":2}"]);

        let mut list = VerdictList::with_capacity(3);
        for verdict in
            [Verdict::Replace(b"{\"x\":1}".to_vec()), Verdict::Drop, Verdict::Replace(b"{}".to_vec())]
        {
            list.push(verdict).expect("small list");
        }
        let read = list.read(3).expect("consistent");
        assert_eq!(
            read,
            vec![VerdictRef::Replace(b"{\"x\":1}"), VerdictRef::Drop, VerdictRef::Replace(b"{}")]
        );
    }

    #[test]
    fn broken_tables_and_lists_are_errors_not_panics() {
        assert!(events(b"abc", &[0, 5]).is_err());
        assert!(events(b"abc", &[1, 2]).is_err());
        assert!(events(b"abc", &[0, 2, 1]).is_err());
        let list = VerdictList { codes: vec![KEEP, 7], ..VerdictList::default() };
        assert!(list.read(2).unwrap_err().0.contains("unknown verdict code 7"));
        assert!(list.read(3).unwrap_err().0.contains("2 verdicts for a batch of 3"));
        let list = VerdictList { codes: vec![REPLACE], replacements: vec![], replacement_ends: vec![] };
        assert!(list.read(1).is_err());
        let list = VerdictList { codes: vec![REPLACE], replacements: vec![1], replacement_ends: vec![9] };
        assert!(list.read(1).is_err());
        let list = VerdictList { codes: vec![KEEP], replacements: vec![1], replacement_ends: vec![1] };
        assert!(list.read(1).is_err());
    }
}
