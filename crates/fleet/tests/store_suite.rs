//! The fleet store suite against the in-memory store.

use ferrosim_fleet::store::{MemFleetStore, suite};

#[test]
fn mem_store_passes_the_suite() {
    let store = MemFleetStore::new();
    if let Err(e) = futures::executor::block_on(suite::run_all(&store)) {
        panic!("store failed: {e}");
    }
}
