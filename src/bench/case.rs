//! [`Case`]: the benchmark cases, their names on the command line, and the selection of
//! the cases to run.

use anyhow::bail;

/// One benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    ChannelRoundtrip,
    InprocNoop,
    ProcessNoop,
    ProcessNoopPrefetch,
    SpawnPerTask,
    HttpCeiling,
    HttpExecute,
    MonitorTick,
    MonitorsIdleCpu,
    RedisNoop,
    RedisNoop2i,
}

impl Case {
    /// Every case, in the order they run by default.
    const ALL: [Case; 11] = [
        Case::ChannelRoundtrip,
        Case::InprocNoop,
        Case::ProcessNoop,
        Case::ProcessNoopPrefetch,
        Case::SpawnPerTask,
        Case::HttpCeiling,
        Case::HttpExecute,
        Case::MonitorTick,
        Case::MonitorsIdleCpu,
        Case::RedisNoop,
        Case::RedisNoop2i,
    ];

    /// The case's name on the command line and in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::ChannelRoundtrip => "channel-roundtrip",
            Case::InprocNoop => "inproc-noop",
            Case::ProcessNoop => "process-noop",
            Case::ProcessNoopPrefetch => "process-noop-prefetch",
            Case::SpawnPerTask => "spawn-per-task",
            Case::HttpCeiling => "http-ceiling",
            Case::HttpExecute => "http-execute",
            Case::MonitorTick => "monitor-tick",
            Case::MonitorsIdleCpu => "monitors-idle-cpu",
            Case::RedisNoop => "redis-noop",
            Case::RedisNoop2i => "redis-noop-2i",
        }
    }

    fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The cases named on the command line (every case when none is), without repeats.
pub(super) fn select_cases(names: &[String]) -> anyhow::Result<Vec<Case>> {
    if names.is_empty() {
        return Ok(Case::ALL.to_vec());
    }
    let mut cases = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match Case::from_name(name) {
            Some(case) if !cases.contains(&case) => cases.push(case),
            Some(_) => {}
            None => unknown.push(format!("{name:?}")),
        }
    }
    if !unknown.is_empty() {
        let valid: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        let noun = if unknown.len() == 1 { "case" } else { "cases" };
        bail!("unknown benchmark {noun} {}; valid cases: {}", unknown.join(", "), valid.join(", "));
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_case_means_every_case_in_order() {
        assert_eq!(select_cases(&[]).unwrap(), Case::ALL.to_vec());
    }

    #[test]
    fn named_cases_keep_their_order_without_repeats() {
        let names = ["process-noop", "channel-roundtrip", "process-noop"].map(String::from);
        assert_eq!(select_cases(&names).unwrap(), vec![Case::ProcessNoop, Case::ChannelRoundtrip]);
    }

    #[test]
    fn an_unknown_case_lists_the_valid_ones() {
        let err = select_cases(&["inproc-noop".into(), "nope".into()]).unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
        for case in Case::ALL {
            assert!(err.contains(case.name()), "{err}");
        }
    }
}
