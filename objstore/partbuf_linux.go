package objstore

import "syscall"

// adviseHugePages asks for transparent huge pages behind a part buffer,
// where the system allows them (THP "madvise" or "always"). Filling an
// 8 MiB part then takes four page faults instead of 2,048, each a trap
// into the kernel, which in a virtual machine is a trip to the
// hypervisor too (docs/benchmarks.md, session 8). A buffer then becomes
// resident 2 MiB at a time. It is a hint: refused, the buffer keeps
// small pages.
func adviseHugePages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
