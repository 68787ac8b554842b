/** Hash routing: the relay serves one index.html, and the PWA shell works the same offline. */
export type Route = 'dashboard' | 'chat' | 'activity' | 'credits' | 'models' | 'settings'

const ROUTES: Record<string, Route> = { '': 'dashboard', '/': 'dashboard', '/chat': 'chat', '/activity': 'activity', '/credits': 'credits', '/models': 'models', '/settings': 'settings' }

function current (): Route | undefined {
  return ROUTES[location.hash.replace(/^#/, '')]
}

class Router {
  route = $state<Route | undefined>(current())

  constructor () {
    window.addEventListener('hashchange', () => { this.route = current() })
  }
}

export const router = new Router()
