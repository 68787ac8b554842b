import { mount } from 'svelte'
import App from './App.svelte'
import { agentStore } from './stores/agent.svelte.ts'
import { startBrowserAgent } from '../peer/browser-agent.ts'
import './app.css'

mount(App, { target: document.getElementById('app')! })
startBrowserAgent(role => agentStore.setRole(role))
