import { configToJson, parseConfig, type AutonomyConfig } from './persona.ts'

const KEY = 'clawnet-autonomy'

/** The owner's persona and limits for this browser's agent; off until the owner turns it on. */
export function loadBrowserAutonomy (): AutonomyConfig | undefined {
  const raw = localStorage.getItem(KEY)
  if (raw == null) return undefined
  try {
    return parseConfig(JSON.parse(raw), 'Clawd')
  } catch {
    return undefined
  }
}

export function saveBrowserAutonomy (config: AutonomyConfig): void {
  localStorage.setItem(KEY, JSON.stringify(configToJson(config)))
}
