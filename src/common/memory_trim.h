#pragma once
// ReleaseFreeMemory: gives the allocator's free memory back to the system
// (glibc's malloc_trim), after a model load or unload and after a burst of
// closed connections.
//
// Threading: any thread; calls are serialized. Under AddressSanitizer it
// does nothing: ASan's allocator is not glibc's, and glibc's malloc_trim
// would then set up glibc's own, unused arenas, racily when two threads
// make the first call at once (seen as a crash in mtrim).

namespace inferd {

void ReleaseFreeMemory();

}  // namespace inferd
