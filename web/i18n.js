// Every string of the patient page, in English, German and French.
//
// index.html marks translatable nodes with data-i18n="key" (text),
// data-i18n-aria="key" (aria-label) and data-i18n-placeholder="key";
// applyTranslations() fills them. Placeholders in strings look like {name}.

export const STRINGS = {
  en: {
    title: 'Video consultation',
    brand: 'Video consultation',
    legalImprint: 'Imprint',
    legalPrivacy: 'Privacy notice',
    legalTerms: 'Terms of use',
    loading: 'Loading…',

    incompleteTitle: 'This link is incomplete',
    incompleteText:
      'The link you opened is missing a part. Please open the complete link from your invitation again (copy the whole link, including everything after the “#”).',

    checkTitle: 'Before you join',
    checkIntro: 'We check your camera, microphone, speaker and connection. Nothing is sent yet.',
    previewLabel: 'Your camera picture',
    cameraLabel: 'Camera',
    micLabel: 'Microphone',
    speakerLabel: 'Speaker',
    networkLabel: 'Connection',
    checking: 'Checking…',
    waitingPermission: 'Please allow access to camera and microphone when your browser asks.',
    cameraOk: 'Your camera works. You should see yourself above.',
    cameraDenied: 'Camera access was blocked. You can still join; the doctor will not see you. To allow it, use the camera/lock symbol next to the address.',
    cameraMissing: 'No camera was found. You can still join without video.',
    cameraBusy: 'The camera is being used by another app. Close that app and try again, or join without video.',
    cameraUnsupported: 'This browser does not allow camera access here. Please use an up-to-date browser.',
    cameraError: 'The camera could not be started. You can still join without video.',
    micOk: 'Your microphone works. Say something: the bar should move.',
    micHeard: 'We can hear you.',
    micDenied: 'Microphone access was blocked. You can still join, but the doctor will not hear you. To allow it, use the lock symbol next to the address.',
    micMissing: 'No microphone was found. You can still join, but the doctor will not hear you.',
    micBusy: 'The microphone is being used by another app. Close that app and try again.',
    micUnsupported: 'This browser does not allow microphone access here. Please use an up-to-date browser.',
    micError: 'The microphone could not be started.',
    speakerIdle: 'Press the button to play a short tone.',
    speakerPlaying: 'Playing a test tone…',
    speakerDone: 'Did you hear the tone? If not, turn up the volume and check that your phone is not on silent.',
    speakerError: 'The test tone could not be played.',
    speakerTest: 'Play test tone',
    networkOk: 'Your connection to the service works.',
    networkFail: 'The service could not be reached. Check your Wi-Fi or mobile data, then reload the page.',
    networkNoWebrtc: 'This browser cannot make video calls. Please use an up-to-date Chrome, Firefox, Safari or Edge.',
    retryMedia: 'Try camera and microphone again',

    consentTitle: 'Your consent',
    consentText:
      'I consent to my health data (my picture, my voice and what we talk about) being processed for this video consultation with my doctor. The call runs directly between my device and the doctor’s (peer-to-peer) or, if the network requires it, through a relay that cannot read it; it is end-to-end encrypted. The service stores no content and makes no recording. I can withdraw my consent at any time by ending the call.',
    consentLegal: 'Consent under Art. 9(2)(a) GDPR.',
    consentRequired: 'Please tick the box to give your consent before joining.',
    nameLabel: 'Your name (optional)',
    nameHint: 'Shown only to your doctor, end-to-end encrypted. At most 64 characters.',
    join: 'Join waiting room',

    waitingTitle: 'Waiting room',
    waitingText: 'The doctor has been notified and will let you in shortly. Please keep this page open.',
    waitingConnecting: 'Connecting to the waiting room…',
    leave: 'Leave waiting room',

    callTitle: 'Video consultation',
    remoteVideo: 'Video of your doctor',
    localVideo: 'Your own picture',
    mute: 'Mute microphone',
    unmute: 'Unmute microphone',
    cameraOff: 'Turn camera off',
    cameraOn: 'Turn camera on',
    noCamera: 'No camera',
    noMic: 'No microphone',
    hangup: 'Hang up',
    startMedia: 'Tap to start sound and picture',
    sasLabel: 'Security code:',
    sasHint: 'Your doctor sees the same code. If the codes differ, hang up.',
    sasPending: 'being calculated…',
    connConnecting: 'Connecting…',
    connDirect: 'Connected directly',
    connRelay: 'Connected via relay (still end-to-end encrypted)',
    connReconnecting: 'Connection interrupted, reconnecting…',
    connFailed: 'Connection lost. Trying again…',
    doctorAway: 'The doctor’s connection was interrupted. Please wait.',
    signallingLost: 'Connection to the service lost. Reconnecting…',
    doctorMessage: 'Message from your doctor: {text}',

    endedTitle: 'The consultation has ended',
    endedByYou: 'You hung up.',
    endedByDoctor: 'The doctor ended the call.',
    endedByNode: 'The consultation was closed.',
    endedExpired: 'The consultation time is over.',
    leftWaiting: 'You left the waiting room. You can open the link again to rejoin.',
    endedClose: 'You can close this page now.',
    rejoin: 'Join again',

    errorTitle: 'Something went wrong',
    errorCodeLabel: 'Code:',
    errBadToken: 'This link is not valid or has expired. Please ask your practice for a new link.',
    errSeatTaken: 'This consultation is already open on another device or in another window.',
    errReplaced: 'This consultation was opened in another window. This page has been disconnected.',
    errIntegrity: 'The connection could not be verified securely. The call was stopped.',
    errGeneric: 'The connection to the service failed. Please reload the page.',
    errUnsupported: 'This browser cannot open the consultation securely. Please use an up-to-date Chrome, Firefox, Safari or Edge.',
    reload: 'Reload page',
  },

  de: {
    title: 'Videosprechstunde',
    brand: 'Videosprechstunde',
    legalImprint: 'Impressum',
    legalPrivacy: 'Datenschutzhinweise',
    legalTerms: 'Nutzungsbedingungen',
    loading: 'Wird geladen…',

    incompleteTitle: 'Dieser Link ist unvollständig',
    incompleteText:
      'Dem geöffneten Link fehlt ein Teil. Bitte öffnen Sie den vollständigen Link aus Ihrer Einladung erneut (den ganzen Link kopieren, auch alles nach dem „#“).',

    checkTitle: 'Bevor Sie beitreten',
    checkIntro: 'Wir prüfen Kamera, Mikrofon, Lautsprecher und Verbindung. Es wird noch nichts übertragen.',
    previewLabel: 'Ihr Kamerabild',
    cameraLabel: 'Kamera',
    micLabel: 'Mikrofon',
    speakerLabel: 'Lautsprecher',
    networkLabel: 'Verbindung',
    checking: 'Wird geprüft…',
    waitingPermission: 'Bitte erlauben Sie den Zugriff auf Kamera und Mikrofon, wenn Ihr Browser fragt.',
    cameraOk: 'Ihre Kamera funktioniert. Sie sollten sich oben sehen.',
    cameraDenied: 'Der Kamerazugriff wurde blockiert. Sie können trotzdem beitreten; die Praxis sieht Sie dann nicht. Zum Erlauben tippen Sie auf das Kamera- oder Schloss-Symbol neben der Adresse.',
    cameraMissing: 'Es wurde keine Kamera gefunden. Sie können ohne Bild beitreten.',
    cameraBusy: 'Die Kamera wird von einer anderen App benutzt. Schließen Sie diese App und versuchen Sie es erneut, oder treten Sie ohne Bild bei.',
    cameraUnsupported: 'Dieser Browser erlaubt hier keinen Kamerazugriff. Bitte verwenden Sie einen aktuellen Browser.',
    cameraError: 'Die Kamera konnte nicht gestartet werden. Sie können ohne Bild beitreten.',
    micOk: 'Ihr Mikrofon funktioniert. Sagen Sie etwas: Der Balken sollte sich bewegen.',
    micHeard: 'Wir können Sie hören.',
    micDenied: 'Der Mikrofonzugriff wurde blockiert. Sie können trotzdem beitreten, aber die Praxis hört Sie nicht. Zum Erlauben tippen Sie auf das Schloss-Symbol neben der Adresse.',
    micMissing: 'Es wurde kein Mikrofon gefunden. Sie können beitreten, aber die Praxis hört Sie nicht.',
    micBusy: 'Das Mikrofon wird von einer anderen App benutzt. Schließen Sie diese App und versuchen Sie es erneut.',
    micUnsupported: 'Dieser Browser erlaubt hier keinen Mikrofonzugriff. Bitte verwenden Sie einen aktuellen Browser.',
    micError: 'Das Mikrofon konnte nicht gestartet werden.',
    speakerIdle: 'Drücken Sie die Taste, um einen kurzen Ton abzuspielen.',
    speakerPlaying: 'Testton wird abgespielt…',
    speakerDone: 'Haben Sie den Ton gehört? Falls nicht, drehen Sie die Lautstärke auf und prüfen Sie, ob Ihr Telefon stumm geschaltet ist.',
    speakerError: 'Der Testton konnte nicht abgespielt werden.',
    speakerTest: 'Testton abspielen',
    networkOk: 'Die Verbindung zum Dienst funktioniert.',
    networkFail: 'Der Dienst ist nicht erreichbar. Prüfen Sie WLAN oder mobile Daten und laden Sie die Seite neu.',
    networkNoWebrtc: 'Mit diesem Browser sind keine Videoanrufe möglich. Bitte verwenden Sie einen aktuellen Chrome, Firefox, Safari oder Edge.',
    retryMedia: 'Kamera und Mikrofon erneut versuchen',

    consentTitle: 'Ihre Einwilligung',
    consentText:
      'Ich willige ein, dass meine Gesundheitsdaten (mein Bild, meine Stimme und die Gesprächsinhalte) für diese Videosprechstunde mit meiner Ärztin oder meinem Arzt verarbeitet werden. Die Verbindung läuft direkt zwischen meinem Gerät und dem der Praxis (Peer-to-Peer) oder, wenn das Netz es erfordert, über ein Relais, das nichts lesen kann; sie ist Ende-zu-Ende-verschlüsselt. Der Dienst speichert keine Inhalte und zeichnet nichts auf. Ich kann meine Einwilligung jederzeit widerrufen, indem ich das Gespräch beende.',
    consentLegal: 'Einwilligung nach Art. 9 Abs. 2 lit. a DSGVO.',
    consentRequired: 'Bitte setzen Sie das Häkchen, um vor dem Beitreten Ihre Einwilligung zu geben.',
    nameLabel: 'Ihr Name (freiwillig)',
    nameHint: 'Nur für Ihre Praxis sichtbar, Ende-zu-Ende-verschlüsselt. Höchstens 64 Zeichen.',
    join: 'Wartezimmer betreten',

    waitingTitle: 'Wartezimmer',
    waitingText: 'Die Praxis wurde benachrichtigt und lässt Sie gleich herein. Bitte lassen Sie diese Seite geöffnet.',
    waitingConnecting: 'Verbindung zum Wartezimmer wird hergestellt…',
    leave: 'Wartezimmer verlassen',

    callTitle: 'Videosprechstunde',
    remoteVideo: 'Video Ihrer Ärztin oder Ihres Arztes',
    localVideo: 'Ihr eigenes Bild',
    mute: 'Mikrofon stumm schalten',
    unmute: 'Mikrofon einschalten',
    cameraOff: 'Kamera ausschalten',
    cameraOn: 'Kamera einschalten',
    noCamera: 'Keine Kamera',
    noMic: 'Kein Mikrofon',
    hangup: 'Auflegen',
    startMedia: 'Tippen, um Ton und Bild zu starten',
    sasLabel: 'Sicherheitscode:',
    sasHint: 'Ihre Praxis sieht denselben Code. Wenn die Codes verschieden sind, legen Sie auf.',
    sasPending: 'wird berechnet…',
    connConnecting: 'Verbindung wird aufgebaut…',
    connDirect: 'Direkt verbunden',
    connRelay: 'Über ein Relais verbunden (weiterhin Ende-zu-Ende-verschlüsselt)',
    connReconnecting: 'Verbindung unterbrochen, wird wiederhergestellt…',
    connFailed: 'Verbindung verloren. Neuer Versuch…',
    doctorAway: 'Die Verbindung der Praxis wurde unterbrochen. Bitte warten Sie.',
    signallingLost: 'Verbindung zum Dienst verloren. Wird wiederhergestellt…',
    doctorMessage: 'Nachricht Ihrer Praxis: {text}',

    endedTitle: 'Die Sprechstunde ist beendet',
    endedByYou: 'Sie haben aufgelegt.',
    endedByDoctor: 'Die Praxis hat das Gespräch beendet.',
    endedByNode: 'Die Sprechstunde wurde geschlossen.',
    endedExpired: 'Die Zeit für diese Sprechstunde ist abgelaufen.',
    leftWaiting: 'Sie haben das Wartezimmer verlassen. Sie können den Link erneut öffnen, um wieder beizutreten.',
    endedClose: 'Sie können diese Seite jetzt schließen.',
    rejoin: 'Erneut beitreten',

    errorTitle: 'Etwas ist schiefgegangen',
    errorCodeLabel: 'Code:',
    errBadToken: 'Dieser Link ist ungültig oder abgelaufen. Bitte fragen Sie Ihre Praxis nach einem neuen Link.',
    errSeatTaken: 'Diese Sprechstunde ist bereits auf einem anderen Gerät oder in einem anderen Fenster geöffnet.',
    errReplaced: 'Diese Sprechstunde wurde in einem anderen Fenster geöffnet. Diese Seite wurde getrennt.',
    errIntegrity: 'Die Verbindung konnte nicht sicher überprüft werden. Das Gespräch wurde beendet.',
    errGeneric: 'Die Verbindung zum Dienst ist fehlgeschlagen. Bitte laden Sie die Seite neu.',
    errUnsupported: 'Dieser Browser kann die Sprechstunde nicht sicher öffnen. Bitte verwenden Sie einen aktuellen Chrome, Firefox, Safari oder Edge.',
    reload: 'Seite neu laden',
  },

  fr: {
    title: 'Téléconsultation',
    brand: 'Téléconsultation',
    legalImprint: 'Mentions légales',
    legalPrivacy: 'Politique de confidentialité',
    legalTerms: "Conditions d'utilisation",
    loading: 'Chargement…',

    incompleteTitle: 'Ce lien est incomplet',
    incompleteText:
      'Il manque une partie au lien que vous avez ouvert. Veuillez rouvrir le lien complet de votre invitation (copiez tout le lien, y compris ce qui suit le « # »).',

    checkTitle: 'Avant de commencer',
    checkIntro: 'Nous vérifions votre caméra, votre micro, votre haut-parleur et votre connexion. Rien n’est encore transmis.',
    previewLabel: 'Image de votre caméra',
    cameraLabel: 'Caméra',
    micLabel: 'Micro',
    speakerLabel: 'Haut-parleur',
    networkLabel: 'Connexion',
    checking: 'Vérification…',
    waitingPermission: 'Veuillez autoriser l’accès à la caméra et au micro lorsque votre navigateur le demande.',
    cameraOk: 'Votre caméra fonctionne. Vous devriez vous voir ci-dessus.',
    cameraDenied: 'L’accès à la caméra a été bloqué. Vous pouvez tout de même rejoindre ; le médecin ne vous verra pas. Pour l’autoriser, touchez le symbole de caméra ou de cadenas à côté de l’adresse.',
    cameraMissing: 'Aucune caméra trouvée. Vous pouvez rejoindre sans vidéo.',
    cameraBusy: 'La caméra est utilisée par une autre application. Fermez-la et réessayez, ou rejoignez sans vidéo.',
    cameraUnsupported: 'Ce navigateur n’autorise pas l’accès à la caméra ici. Veuillez utiliser un navigateur à jour.',
    cameraError: 'La caméra n’a pas pu démarrer. Vous pouvez rejoindre sans vidéo.',
    micOk: 'Votre micro fonctionne. Dites quelque chose : la barre doit bouger.',
    micHeard: 'Nous vous entendons.',
    micDenied: 'L’accès au micro a été bloqué. Vous pouvez tout de même rejoindre, mais le médecin ne vous entendra pas. Pour l’autoriser, touchez le symbole de cadenas à côté de l’adresse.',
    micMissing: 'Aucun micro trouvé. Vous pouvez rejoindre, mais le médecin ne vous entendra pas.',
    micBusy: 'Le micro est utilisé par une autre application. Fermez-la et réessayez.',
    micUnsupported: 'Ce navigateur n’autorise pas l’accès au micro ici. Veuillez utiliser un navigateur à jour.',
    micError: 'Le micro n’a pas pu démarrer.',
    speakerIdle: 'Appuyez sur le bouton pour jouer un court son.',
    speakerPlaying: 'Son de test en cours…',
    speakerDone: 'Avez-vous entendu le son ? Sinon, montez le volume et vérifiez que votre téléphone n’est pas en mode silencieux.',
    speakerError: 'Le son de test n’a pas pu être joué.',
    speakerTest: 'Jouer un son de test',
    networkOk: 'Votre connexion au service fonctionne.',
    networkFail: 'Le service est injoignable. Vérifiez votre Wi-Fi ou vos données mobiles, puis rechargez la page.',
    networkNoWebrtc: 'Ce navigateur ne permet pas les appels vidéo. Veuillez utiliser Chrome, Firefox, Safari ou Edge à jour.',
    retryMedia: 'Réessayer la caméra et le micro',

    consentTitle: 'Votre consentement',
    consentText:
      'J’accepte que mes données de santé (mon image, ma voix et le contenu de l’échange) soient traitées pour cette téléconsultation avec mon médecin. L’appel passe directement entre mon appareil et celui du médecin (pair à pair) ou, si le réseau l’exige, par un relais qui ne peut pas le lire ; il est chiffré de bout en bout. Le service ne conserve aucun contenu et n’effectue aucun enregistrement. Je peux retirer mon consentement à tout moment en mettant fin à l’appel.',
    consentLegal: 'Consentement au titre de l’art. 9, paragraphe 2, point a) du RGPD.',
    consentRequired: 'Veuillez cocher la case pour donner votre consentement avant de rejoindre.',
    nameLabel: 'Votre nom (facultatif)',
    nameHint: 'Visible uniquement par votre médecin, chiffré de bout en bout. 64 caractères au maximum.',
    join: 'Entrer en salle d’attente',

    waitingTitle: 'Salle d’attente',
    waitingText: 'Le médecin a été prévenu et va vous faire entrer. Veuillez garder cette page ouverte.',
    waitingConnecting: 'Connexion à la salle d’attente…',
    leave: 'Quitter la salle d’attente',

    callTitle: 'Téléconsultation',
    remoteVideo: 'Vidéo de votre médecin',
    localVideo: 'Votre propre image',
    mute: 'Couper le micro',
    unmute: 'Rétablir le micro',
    cameraOff: 'Éteindre la caméra',
    cameraOn: 'Allumer la caméra',
    noCamera: 'Pas de caméra',
    noMic: 'Pas de micro',
    hangup: 'Raccrocher',
    startMedia: 'Touchez pour lancer le son et l’image',
    sasLabel: 'Code de sécurité :',
    sasHint: 'Votre médecin voit le même code. Si les codes diffèrent, raccrochez.',
    sasPending: 'en cours de calcul…',
    connConnecting: 'Connexion en cours…',
    connDirect: 'Connecté directement',
    connRelay: 'Connecté via un relais (toujours chiffré de bout en bout)',
    connReconnecting: 'Connexion interrompue, reconnexion…',
    connFailed: 'Connexion perdue. Nouvel essai…',
    doctorAway: 'La connexion du médecin a été interrompue. Veuillez patienter.',
    signallingLost: 'Connexion au service perdue. Reconnexion…',
    doctorMessage: 'Message de votre médecin : {text}',

    endedTitle: 'La consultation est terminée',
    endedByYou: 'Vous avez raccroché.',
    endedByDoctor: 'Le médecin a mis fin à l’appel.',
    endedByNode: 'La consultation a été fermée.',
    endedExpired: 'Le temps prévu pour la consultation est écoulé.',
    leftWaiting: 'Vous avez quitté la salle d’attente. Vous pouvez rouvrir le lien pour revenir.',
    endedClose: 'Vous pouvez maintenant fermer cette page.',
    rejoin: 'Revenir',

    errorTitle: 'Un problème est survenu',
    errorCodeLabel: 'Code :',
    errBadToken: 'Ce lien n’est pas valide ou a expiré. Veuillez demander un nouveau lien à votre cabinet.',
    errSeatTaken: 'Cette consultation est déjà ouverte sur un autre appareil ou dans une autre fenêtre.',
    errReplaced: 'Cette consultation a été ouverte dans une autre fenêtre. Cette page a été déconnectée.',
    errIntegrity: 'La connexion n’a pas pu être vérifiée de façon sûre. L’appel a été arrêté.',
    errGeneric: 'La connexion au service a échoué. Veuillez recharger la page.',
    errUnsupported: 'Ce navigateur ne peut pas ouvrir la consultation de façon sûre. Veuillez utiliser Chrome, Firefox, Safari ou Edge à jour.',
    reload: 'Recharger la page',
  },
};

export const LANGUAGES = Object.keys(STRINGS);
export const DEFAULT_LANGUAGE = 'en';

/**
 * The first of the browser's preferred languages that we have, by primary
 * subtag ("de-AT" -> "de"); English when none matches.
 */
export function pickLanguage(preferred) {
  const list = Array.isArray(preferred) ? preferred : [];
  for (const tag of list) {
    const primary = String(tag).toLowerCase().split(/[-_]/)[0];
    if (Object.prototype.hasOwnProperty.call(STRINGS, primary)) return primary;
  }
  return DEFAULT_LANGUAGE;
}

/** A translator for one language; falls back to English, then to the key. */
export function translator(lang) {
  const table = STRINGS[lang] || STRINGS[DEFAULT_LANGUAGE];
  return function t(key, vars) {
    let s = table[key];
    if (s === undefined) s = STRINGS[DEFAULT_LANGUAGE][key];
    if (s === undefined) return key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  };
}

/** Fills every data-i18n* attribute below root. */
export function applyTranslations(root, t) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
}
