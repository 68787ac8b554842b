import { defineConfig } from 'vite'
import { svelte } from '@sveltejs/vite-plugin-svelte'
import { VitePWA } from 'vite-plugin-pwa'

// The app shell (HTML, JS, CSS, icons, small wasm) is precached so the dashboard opens offline.
// onnxruntime's .wasm (~25 MB) is deliberately left out of the precache: precaching it would make
// every install download it even for owners who never open the models view, and one slow 25 MB
// fetch can fail the whole service-worker install. It is cached at runtime instead, on first use.
const PRECACHE_LIMIT = 5 * 1024 * 1024

export default defineConfig({
  plugins: [
    svelte(),
    VitePWA({
      registerType: 'autoUpdate',
      injectRegister: 'auto',
      // public/ is already matched by globPatterns; listing icons again would precache them twice.
      includeManifestIcons: false,
      manifest: {
        name: 'ClawNet',
        short_name: 'ClawNet',
        description: 'Your agent in a peer-to-peer mesh that pools the GPUs people already have.',
        theme_color: '#0b0f17',
        background_color: '#0b0f17',
        display: 'standalone',
        start_url: './',
        scope: './',
        icons: [
          { src: 'icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: 'icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: 'icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' }
        ]
      },
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,wasm,webmanifest}'],
        // Named, not just size-filtered: the plugin fails the build on any matched file over the limit.
        globIgnores: ['**/ort-wasm-*.wasm'],
        maximumFileSizeToCacheInBytes: PRECACHE_LIMIT,
        // The relay answers these itself; the SPA fallback must never shadow them.
        navigateFallbackDenylist: [/^\/api\//, /^\/v1\//],
        runtimeCaching: [{
          urlPattern: ({ url }) => url.pathname.endsWith('.wasm'),
          handler: 'CacheFirst',
          options: { cacheName: 'clawnet-wasm', expiration: { maxEntries: 8 } }
        }]
      }
    })
  ],
  build: {
    target: 'es2022',
    // The agent (libp2p, noise, gossipsub, WebRTC) is one ~650 kB chunk the page needs before it
    // can show anything useful; splitting it would add round trips, not save bytes.
    chunkSizeWarningLimit: 1024
  },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' }
})
