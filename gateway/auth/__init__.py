"""Who is asking: registered backend clients, the SMART Backend Services
token exchange, the gateway's access tokens and the scopes they carry.
https://hl7.org/fhir/smart-app-launch/backend-services.html"""
