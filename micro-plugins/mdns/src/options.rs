//! Options of the `mdns` registry plugin, in the `registry:` section.

use serde::{Deserialize, Serialize};

/// Options of the `mdns` registry (`registry: {plugin: mdns, interface: eth0}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "registry", plugin = "mdns")]
pub struct MdnsRegistryOptions {
    /// The only network interface mDNS uses (its name, e.g. `eth0` or `lo`); empty = every
    /// interface mdns-sd finds, loopback included.
    pub interface: String,
    /// Use IPv6 too (multicast to ff02::fb as well as 224.0.0.251).
    #[component(default = true)]
    pub ipv6: bool,
}
