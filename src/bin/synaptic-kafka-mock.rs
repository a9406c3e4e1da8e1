//! A Kafka cluster in one process, for trying pipelines and for tests: librdkafka's
//! mock cluster, with topics created up front. Prints `bootstrap=HOST:PORT,…` on
//! standard output, then runs until standard input closes or SIGTERM/SIGINT.
//! Lines on standard input take a broker down and up again (connections cut and
//! refused, its data kept), as in an outage or a restart: `down 1`, `up 1`.
//!
//!     synaptic-kafka-mock --brokers 1 --topic events:6 --topic out:6

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use rdkafka::mocking::MockCluster;

#[derive(Parser)]
#[command(about = "Runs librdkafka's mock Kafka cluster until stdin closes")]
struct Args {
    /// Number of brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// A topic to create, as NAME:PARTITIONS (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cluster = match MockCluster::new(args.brokers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the mock cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    for spec in &args.topics {
        let (name, partitions) = spec.split_once(':').unwrap_or((spec, "1"));
        let Ok(partitions) = partitions.parse::<i32>() else {
            eprintln!("error: --topic {spec}: partitions must be a number");
            return ExitCode::FAILURE;
        };
        if let Err(e) = cluster.create_topic(name, partitions, 1) {
            eprintln!("error: creating topic {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("bootstrap={}", cluster.bootstrap_servers());
    let _ = std::io::stdout().flush();
    // Blocks until stdin closes (the parent died or closed it); signals end the
    // process the default way, which is all a mock needs.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let result = match (words.next(), words.next().map(str::parse::<i32>)) {
            (Some("down"), Some(Ok(id))) => cluster.broker_down(id),
            (Some("up"), Some(Ok(id))) => cluster.broker_up(id),
            (None, _) => continue,
            _ => {
                eprintln!("unknown command {line:?}: `down N` or `up N`");
                continue;
            }
        };
        // On stderr: the parent stops reading stdout after the bootstrap line.
        match result {
            Ok(()) => eprintln!("mock cluster: {line}"),
            Err(e) => eprintln!("mock cluster: {line} failed: {e}"),
        }
    }
    ExitCode::SUCCESS
}
