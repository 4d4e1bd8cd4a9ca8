//! Fails to build if `mediakit-core` without default features depends on `std`.
#![no_std]

pub use mediakit_core as core_under_test;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
