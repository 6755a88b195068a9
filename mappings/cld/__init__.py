"""Council adult social care records: Client Level Data (CLD) returns."""
