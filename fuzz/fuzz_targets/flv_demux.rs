#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mediakit_fuzz::flv_demux(data));
