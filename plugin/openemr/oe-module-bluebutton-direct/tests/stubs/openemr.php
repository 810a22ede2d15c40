<?php

/**
 * Stand-ins for the OpenEMR and Symfony classes the module touches, with the signatures of OpenEMR 7.0.x
 * (src/Events/..., src/Services/Globals/..., src/Common/...). Only for the module's unit tests: the real
 * classes come from OpenEMR at run time.
 */

namespace Symfony\Contracts\EventDispatcher {
    class Event
    {
    }
}

namespace Symfony\Component\EventDispatcher {
    interface EventDispatcherInterface
    {
        public function addListener(string $eventName, callable|array $listener, int $priority = 0);

        public function dispatch(object $event, ?string $eventName = null): object;
    }

    class EventDispatcher implements EventDispatcherInterface
    {
        /** @var array<string, list<callable>> */
        public array $listeners = [];

        public function addListener(string $eventName, callable|array $listener, int $priority = 0)
        {
            $this->listeners[$eventName][] = $listener;
        }

        public function dispatch(object $event, ?string $eventName = null): object
        {
            foreach ($this->listeners[$eventName ?? get_class($event)] ?? [] as $listener) {
                $listener($event);
            }
            return $event;
        }
    }
}

namespace OpenEMR\Core {
    abstract class AbstractModuleActionListener
    {
        public function __construct()
        {
        }

        abstract public function moduleManagerAction($methodName, $modId, string $currentActionStatus = 'Success'): string;

        abstract protected static function getModuleNamespace(): string;

        abstract protected static function initListenerSelf();
    }
}

namespace OpenEMR\Services {
    class BaseService
    {
    }
}

namespace OpenEMR\Services\Globals {
    class GlobalSetting
    {
        public function __construct(public $label, public $dataType, public $default, public $description, public $isUserSetting = false)
        {
        }
    }

    class GlobalsService
    {
        /** @var array<string, array<string, GlobalSetting>> */
        public array $sections = [];

        public function createSection($section, $beforeSection = false)
        {
            $this->sections[$section] = $this->sections[$section] ?? [];
        }

        public function appendToSection($section, $key, GlobalSetting $global)
        {
            $this->sections[$section][$key] = $global;
        }
    }
}

namespace OpenEMR\Events\Globals {
    use OpenEMR\Services\Globals\GlobalsService;
    use Symfony\Contracts\EventDispatcher\Event;

    class GlobalsInitializedEvent extends Event
    {
        const EVENT_HANDLE = 'globals.initialized';

        public function __construct(private GlobalsService $globalsService)
        {
        }

        public function getGlobalsService(): GlobalsService
        {
            return $this->globalsService;
        }
    }
}

namespace OpenEMR\Events\Core {
    use Symfony\Contracts\EventDispatcher\Event;

    class TwigEnvironmentEvent extends Event
    {
        const EVENT_CREATED = 'twigEnvironment.created';

        public function __construct(private $twig)
        {
        }

        public function getTwigEnvironment()
        {
            return $this->twig;
        }
    }
}

namespace OpenEMR\Events\Patient {
    use Symfony\Contracts\EventDispatcher\Event;

    class PatientUpdatedEvent extends Event
    {
        const EVENT_HANDLE = 'patient.updated';

        public function __construct(private $dataBeforeUpdate, private $newPatientData)
        {
        }

        public function getDataBeforeUpdate()
        {
            return $this->dataBeforeUpdate;
        }

        public function getNewPatientData()
        {
            return $this->newPatientData;
        }
    }
}

namespace OpenEMR\Events\Services {
    use OpenEMR\Services\BaseService;
    use Symfony\Contracts\EventDispatcher\Event;

    class ServiceSaveEvent extends Event
    {
        const EVENT_PRE_SAVE = 'service.save.pre';
        const EVENT_POST_SAVE = 'service.save.post';

        public function __construct(private BaseService $service, private array $saveData)
        {
        }

        public function getService(): BaseService
        {
            return $this->service;
        }

        public function getSaveData()
        {
            return $this->saveData;
        }
    }
}

namespace OpenEMR\Events\Patient\Summary\Card {
    use Symfony\Contracts\EventDispatcher\Event;

    interface CardInterface
    {
        public function getIdentifier(): string;

        public function getTemplateFile(): string;

        public function getTemplateVariables(): array;

        public function getAcl(): array;
    }

    class CardModel implements CardInterface
    {
        private $identifier = '';
        private $title = '';
        private $acl = [];
        private $templateFile;
        private $templateVariables;
        private $add = true;
        private $edit = false;
        private $collapse = true;
        private $dispatcher;

        public function __construct(array $opts)
        {
            foreach ($opts as $prop => $val) {
                if (property_exists($this, $prop)) {
                    $this->$prop = $val;
                }
            }
        }

        public function getIdentifier(): string
        {
            return $this->identifier;
        }

        public function getTitle(): string
        {
            return $this->title;
        }

        public function getAcl(): array
        {
            return $this->acl;
        }

        public function getTemplateFile(): string
        {
            return $this->templateFile;
        }

        public function getTemplateVariables(): array
        {
            return $this->templateVariables;
        }
    }

    class SectionEvent extends Event
    {
        const EVENT_HANDLE = 'section.render';
        private array $cards = [];

        public function __construct(private string $section)
        {
        }

        public function getSection(): string
        {
            return $this->section;
        }

        public function getCards(): array
        {
            return $this->cards;
        }

        public function addCard(CardInterface $card, $position = null): void
        {
            foreach ($this->cards as $existing) {
                if ($existing->getIdentifier() === $card->getIdentifier()) {
                    throw new \DomainException("Card {$card->getIdentifier()} is not unique in current list");
                }
            }
            $this->cards[] = $card;
        }
    }
}

namespace OpenEMR\Common\Csrf {
    class CsrfUtils
    {
        public static string $token = 'csrf-test-token';

        public static function collectCsrfToken($subject = 'default', $session = null)
        {
            return self::$token;
        }

        public static function verifyCsrfToken($token, $subject = 'default', $session = null)
        {
            return hash_equals(self::$token, (string) $token);
        }
    }
}

namespace OpenEMR\Common\Acl {
    class AclMain
    {
        public static bool $allow = true;

        public static function aclCheckCore($section, $value, $user = '', $return_value = '')
        {
            return self::$allow;
        }
    }
}

namespace OpenEMR\Common\Uuid {
    class UuidRegistry
    {
        public static function uuidToString($uuidBytes)
        {
            $hex = bin2hex($uuidBytes);
            return substr($hex, 0, 8) . '-' . substr($hex, 8, 4) . '-' . substr($hex, 12, 4) . '-' . substr($hex, 16, 4) . '-' . substr($hex, 20);
        }
    }
}

namespace {
    function xl($s)
    {
        return $s;
    }

    function xlt($s)
    {
        return htmlspecialchars($s, ENT_NOQUOTES);
    }

    function text($s)
    {
        return htmlspecialchars((string) $s, ENT_NOQUOTES);
    }

    function attr($s)
    {
        return htmlspecialchars((string) $s, ENT_QUOTES);
    }
}
