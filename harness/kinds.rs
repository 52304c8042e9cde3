//! The words every layer shares about a run: its suite, the kind of its target, its load model, the
//! mode of a WebSocket run and the reference targets the harness can start. Plain enums with the names
//! they have in scenario files and in `result.json`; they carry no behaviour, so that the metric
//! catalogue, the plan and the reports can all speak of a run without importing one another.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a plain enum with its file/result names, `as_str` and `Display`.
macro_rules! named {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in scenario files and results.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// What a run means (DESIGN.md: the six suites).
    pub enum Suite {
        Reliability => "reliability",
        Performance => "performance",
        Stress => "stress",
        FailureInjection => "failure_injection",
        Concurrency => "concurrency",
        Endurance => "endurance",
    }
}

named! {
    /// What a target is.
    pub enum TargetKind {
        /// A handoff procedure over HTTP.
        Handoff => "handoff",
        /// A WebSocket endpoint.
        Websocket => "websocket",
        /// One HTTP request per iteration.
        Http => "http",
    }
}

named! {
    /// A reference target the harness can start itself on 127.0.0.1.
    pub enum Embedded {
        Handoff => "handoff",
        Websocket => "websocket",
    }
}

named! {
    /// How iterations are paced.
    pub enum LoadModel {
        /// Workers each start their next iteration when the last ends.
        Closed => "closed",
        /// A fixed arrival rate; latency from each iteration's intended start.
        Open => "open",
        /// Open-model stages one after another.
        Stepped => "stepped",
    }
}

impl LoadModel {
    /// Whether iterations have intended start times (and so a service time apart from latency).
    pub fn is_scheduled(self) -> bool {
        self != LoadModel::Closed
    }
}

named! {
    /// What one iteration of a WebSocket run does.
    pub enum WsMode {
        /// Send the `echo` frame and wait for the reply carrying its correlation id.
        Echo => "echo",
        /// Send the `publish` frame and wait for its acknowledgement; subscribers check delivery.
        Publish => "publish",
    }
}

named! {
    /// Which HTTP the HTTP clients speak (`[http] version`, `--http`).
    #[derive(Default)]
    pub enum HttpVersion {
        /// HTTP/2 when TLS's ALPN agrees on it, else HTTP/1.1; plain http is HTTP/1.1.
        #[default]
        Auto => "auto",
        /// HTTP/1.1 only.
        Http1 => "http1",
        /// HTTP/2 only: over TLS by ALPN, over plain http with prior knowledge (h2c).
        Http2 => "http2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_those_of_the_files() {
        assert_eq!(Suite::FailureInjection.to_string(), "failure_injection");
        assert_eq!(
            serde_json::to_value(LoadModel::Stepped).unwrap(),
            serde_json::json!("stepped")
        );
        assert_eq!(TargetKind::ALL.len(), 3);
        assert!(!LoadModel::Closed.is_scheduled() && LoadModel::Open.is_scheduled());
    }
}
