//! Reading a caught panic: both the HTTP layer (a handler that panicked) and the
//! jobs engine (a body that panicked) log or report what the panic said.

use std::any::Any;

/// The message a panic was raised with, or "unknown panic" for a payload that is
/// not a string (`panic_any`).
pub fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn string_and_str_payloads_are_read_and_others_named_unknown() {
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("boom"));
        assert_eq!(super::message(&*owned), "boom");
        let borrowed: Box<dyn std::any::Any + Send> = Box::new("bang");
        assert_eq!(super::message(&*borrowed), "bang");
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(super::message(&*other), "unknown panic");
    }
}
