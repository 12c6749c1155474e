//! The store suite on the in-memory store.

use ferrosim_eim::MemEimStore;

#[tokio::test]
async fn mem_store_passes_the_suite() {
    ferrosim_eim::suite::run_all(&MemEimStore::new())
        .await
        .expect("no store failure");
}
