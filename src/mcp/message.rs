//! Which JSON-RPC 2.0 rule a `/mcp` body breaks, if any, decided before the SDK
//! sees it.
//!
//! The SDK reads a body into one typed message or fails: a `params` of the wrong
//! shape for a method it knows turns into "method not found" (`-32601`, the
//! message being only the method's name), and a body it cannot type at all into
//! a bare 415. A client then hunts for the wrong problem. So every shape is
//! judged here by the JSON-RPC 2.0 specification's Request object rules, with
//! MCP's narrowing (an `id` is a string or an integer, never null; no batches),
//! and answered with the code the specification gives it. docs/mcp.md has the
//! table; `tests/api/mcp_malformed.rs` checks it shape by shape.

use serde_json::Value;

/// What the body is, once judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A message the SDK should answer (a well-formed request or notification,
    /// or a response, which the stateless server refuses itself).
    Pass {
        /// The request's method, to name in a "method not found" message.
        method: Option<String>,
    },
    /// Not a JSON-RPC 2.0 message (`-32700` parse error or `-32600` invalid
    /// request): HTTP 400 with `id: null`, as the Streamable HTTP transport answers
    /// input it cannot accept.
    Invalid { code: i64, message: String },
    /// A well-formed request whose `params` the method cannot take: `-32602`.
    /// With an `id`, HTTP 200 carrying the error for that id; a notification
    /// (no `id`) has no response to carry it, so HTTP 400 with `id: null`.
    BadParams { id: Option<Value>, message: String },
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// The methods this server answers (the SDK's `initialize` and `ping`, and the
/// tools capability); anything else is `-32601`.
pub const METHODS: [&str; 4] = ["initialize", "ping", "tools/list", "tools/call"];

/// Judges `body`, the raw bytes of a POST sent as JSON.
pub fn judge(body: &[u8]) -> Verdict {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Verdict::Invalid {
                code: PARSE_ERROR,
                message: format!("parse error: {e}"),
            }
        }
    };
    let invalid = |why: &str| Verdict::Invalid {
        code: INVALID_REQUEST,
        message: format!("invalid request: {why}"),
    };
    let message = match &value {
        Value::Object(m) => m,
        Value::Array(_) => {
            return invalid("a batch (JSON array) is not supported; send one message object")
        }
        _ => return invalid("expected a JSON-RPC 2.0 message object"),
    };
    if message.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid(r#""jsonrpc" must be "2.0""#);
    }
    let Some(method) = message.get("method") else {
        if message.contains_key("result") || message.contains_key("error") {
            // A response: the SDK refuses it (a stateless server asked nothing).
            return Verdict::Pass { method: None };
        }
        return invalid(r#"no "method""#);
    };
    let Value::String(method) = method else {
        return invalid(r#""method" must be a string"#);
    };
    let id = message.get("id");
    match id {
        None | Some(Value::String(_)) => {}
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(_) => return invalid(r#""id" must be a string or an integer (MCP: never null)"#),
    }
    match message.get("params") {
        None | Some(Value::Object(_)) => {}
        Some(Value::Array(_)) => {
            return Verdict::BadParams {
                id: id.cloned(),
                message: format!(
                    "invalid params: {method} takes named params (an object), not an array"
                ),
            }
        }
        Some(_) => return invalid(r#""params" must be an object, or left out"#),
    }
    if let Some(why) = params_problem(method, message.get("params")) {
        return Verdict::BadParams {
            id: id.cloned(),
            message: format!("invalid params for {method}: {why}"),
        };
    }
    Verdict::Pass {
        method: Some(method.clone()),
    }
}

/// What is wrong with the params (an object or none) of a method whose params
/// the SDK types, so that a wrong shape is `-32602` naming the field instead of
/// the SDK's "method not found".
fn params_problem(method: &str, params: Option<&Value>) -> Option<String> {
    let field = |name: &str| params.and_then(|p| p.get(name));
    let string = |name: &str| match field(name) {
        Some(Value::String(_)) => None,
        Some(_) => Some(format!("\"{name}\" must be a string")),
        None => Some(format!("\"{name}\" is required")),
    };
    let object = |name: &str, required: bool| match field(name) {
        Some(Value::Object(_)) => None,
        None if !required => None,
        Some(_) => Some(format!("\"{name}\" must be an object")),
        None => Some(format!("\"{name}\" is required")),
    };
    match method {
        "tools/call" => string("name").or_else(|| object("arguments", false)),
        "initialize" => string("protocolVersion")
            .or_else(|| object("capabilities", true))
            .or_else(|| object("clientInfo", true))
            .or_else(|| {
                let info = field("clientInfo")?;
                ["name", "version"]
                    .into_iter()
                    .find(|k| !info.get(*k).is_some_and(Value::is_string))
                    .map(|k| format!("\"clientInfo.{k}\" must be a string"))
            }),
        _ => None,
    }
}

/// The message of a `-32601` for `method`.
pub fn method_not_found(method: &str) -> String {
    format!(
        "method not found: '{method}'; this server answers {}",
        METHODS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(body: &str) -> Verdict {
        judge(body.as_bytes())
    }

    fn code(body: &str) -> i64 {
        match verdict(body) {
            Verdict::Invalid { code, .. } => code,
            Verdict::BadParams { .. } => INVALID_PARAMS,
            Verdict::Pass { .. } => 0,
        }
    }

    #[test]
    fn each_shape_gets_the_code_json_rpc_gives_it() {
        let rpc = |rest: &str| format!(r#"{{"jsonrpc":"2.0","id":1,{rest}}}"#);
        assert_eq!(code("{"), PARSE_ERROR);
        for not_a_request in [
            "[]".to_string(),
            "5".into(),
            "null".into(),
            r#""x""#.into(),
            r#"{"id":1,"method":"ping"}"#.into(),
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1}"#.into(),
            rpc(r#""method":5"#),
            rpc(r#""method":null"#),
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.into(),
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#.into(),
            rpc(r#""method":"tools/list","params":"x""#),
            rpc(r#""method":"tools/list","params":null"#),
            rpc(r#""method":"tools/list","params":7"#),
            rpc(r#""method":"tools/list","params":true"#),
        ] {
            assert_eq!(code(&not_a_request), INVALID_REQUEST, "{not_a_request}");
        }
        for bad_params in [
            rpc(r#""method":"tools/list","params":[]"#),
            rpc(r#""method":"tools/call""#),
            rpc(r#""method":"tools/call","params":{}"#),
            rpc(r#""method":"tools/call","params":{"name":5}"#),
            rpc(r#""method":"tools/call","params":{"name":"x","arguments":"y"}"#),
            rpc(r#""method":"initialize","params":{}"#),
            rpc(
                r#""method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x"}}"#,
            ),
        ] {
            assert_eq!(code(&bad_params), INVALID_PARAMS, "{bad_params}");
        }
        for passed in [
            rpc(r#""method":"tools/list""#),
            rpc(r#""method":"no/such""#),
            rpc(r#""method":"tools/call","params":{"name":"x"}"#),
            r#"{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}"#.into(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into(),
        ] {
            assert_eq!(code(&passed), 0, "{passed}");
        }
    }

    #[test]
    fn bad_params_keep_the_id_to_answer_to() {
        assert_eq!(
            verdict(r#"{"jsonrpc":"2.0","id":"q","method":"tools/list","params":[1]}"#),
            Verdict::BadParams {
                id: Some(Value::String("q".into())),
                message: "invalid params: tools/list takes named params (an object), not an array"
                    .into()
            }
        );
        assert!(matches!(
            verdict(r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":[]}"#),
            Verdict::BadParams { id: None, .. }
        ));
    }
}
