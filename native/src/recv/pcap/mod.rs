//! Reading UDP packets out of pcap and pcapng capture files, with a filter.
