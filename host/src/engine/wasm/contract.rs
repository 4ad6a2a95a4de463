//! The rule contracts this host runs, and the checks that a component is a
//! rule built for one of them.
//!
//! Two contracts are bound here: `weir:rule@2.4.0` (`sdk/wit/rule.wit`,
//! what the SDK builds; it also runs rules built for 2.0.0, whose imports
//! and export wasmtime resolves to 2.4.0's by semver, as it does 2.1.0's
//! to 2.3.0's) and the frozen `weir:rule@1.0.0` (`host/wit/v1`).
//! A component is refused at load, naming what it found, if it is not a
//! component, exports no evaluator, was built for another contract
//! version, or imports anything beyond its contract and WASI.

use wasmtime::component::Component;

use crate::engine::LoadError;

/// The current contract, `weir:rule@2.4.0`.
pub(super) mod v2 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "rule",
    });
}

/// The first contract, `weir:rule@1.0.0`, frozen.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "wit/v1",
        world: "rule",
    });
}

pub(crate) use self::v1::weir::rule::types as wit;
pub(super) use self::v2::weir::rule::types as wit2;

/// The contract this host implements: `weir:rule@CONTRACT_VERSION`.
pub const CONTRACT_VERSION: &str = weir_sdk::CONTRACT_VERSION;
/// The first contract, still run for rules built with the first SDK.
pub const LEGACY_CONTRACT_VERSION: &str = "1.0.0";

/// The contracts this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contract {
    /// `weir:rule@1.0.0`, the first SDK's.
    V1,
    /// `weir:rule@2.x` up to [`CONTRACT_VERSION`].
    V2,
}

/// Refuses a component built for another contract version, or one that
/// imports something the host does not provide, naming what it found.
pub(super) fn check(engine: &wasmtime::Engine, component: &Component) -> Result<Contract, LoadError> {
    let ty = component.component_type();
    let mut evaluator = None;
    for (name, _) in ty.exports(engine) {
        if let Some(version) = name.strip_prefix("weir:rule/evaluator@") {
            evaluator = Some(version.to_owned());
        }
    }
    let Some(found) = evaluator else {
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        return Err(LoadError::NotARule { exports });
    };
    let Some(contract) = contract_of(&found) else {
        return Err(LoadError::IncompatibleContract { found, supported: CONTRACT_VERSION });
    };
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix("weir:rule/") {
            let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
            if contract_of(version) != Some(contract) {
                return Err(LoadError::IncompatibleContract { found: version.to_owned(), supported: CONTRACT_VERSION });
            }
        } else if !name.starts_with("wasi:") {
            return Err(LoadError::UnsupportedImport(name.to_owned()));
        }
    }
    Ok(contract)
}

/// Which contract `found` is, if this host runs it: 2.x not newer than
/// [`CONTRACT_VERSION`] (a newer minor may use imports this host lacks), or
/// exactly 1.0.0.
fn contract_of(found: &str) -> Option<Contract> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split(['.', '-', '+']).map(str::parse::<u64>);
        Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    };
    let (f, h) = (parse(found)?, parse(CONTRACT_VERSION)?);
    if f.0 == h.0 && f <= h {
        Some(Contract::V2)
    } else if Some(f) == parse(LEGACY_CONTRACT_VERSION) {
        Some(Contract::V1)
    } else {
        None
    }
}

/// Distinguishes "not wasm" and "a core module" from "a component".
pub(super) fn check_binary_kind(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm { len: bytes.len() });
    }
    // A core module has version 1 and layer 0; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_follow_semver() {
        assert_eq!(contract_of("2.0.0"), Some(Contract::V2));
        assert_eq!(contract_of("2.1.0"), Some(Contract::V2));
        assert_eq!(contract_of("2.2.0"), Some(Contract::V2));
        assert_eq!(contract_of("2.3.0"), Some(Contract::V2));
        assert_eq!(contract_of("2.4.0"), Some(Contract::V2));
        assert_eq!(contract_of("1.0.0"), Some(Contract::V1), "rules built with the first SDK still run");
        assert_eq!(contract_of("3.0.0"), None);
        assert_eq!(contract_of("0.9.0"), None);
        assert_eq!(contract_of("1.1.0"), None, "the first contract is frozen at 1.0.0");
        assert_eq!(contract_of("2.5.0"), None, "a newer minor may use imports this host lacks");
        assert_eq!(contract_of("garbage"), None);
    }

    #[test]
    fn binary_kind_is_checked_before_compiling() {
        assert!(matches!(check_binary_kind(b"hello"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_binary_kind(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(check_binary_kind(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
