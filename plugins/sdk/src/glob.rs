//! Shell-style globs for event types and components: `*` is any run of characters
//! (dots included, so `task.*` matches `task.completed`), `?` is one character.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    literal: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob { pattern: pattern.to_string(), literal: !pattern.contains(['*', '?']) }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.literal {
            return self.pattern == text;
        }
        wildcard(self.pattern.as_bytes(), text.as_bytes())
    }
}

/// Iterative matcher with single-star backtracking: linear in practice, no recursion.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_match_event_types() {
        assert!(Glob::new("task.*").matches("task.completed"));
        assert!(Glob::new("*.violation").matches("security.policy.violation"));
        assert!(Glob::new("security.*violation").matches("security.violation"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("task.complete?").matches("task.completed"));
        assert!(!Glob::new("task.*").matches("tasks.completed"));
        assert!(!Glob::new("agent.lifecycle").matches("agent.lifecycles"));
        assert!(!Glob::new("a*b*c").matches("aXbY"));
    }
}
