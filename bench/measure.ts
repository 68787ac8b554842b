// What several benches measure alike: this process's CPU time, and ratios as they are reported.

/** CPU milliseconds (user + system) this process has used so far. */
export const ownCpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }

/** a / b to 0.001: the side-by-side figure benches report. */
export const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000
