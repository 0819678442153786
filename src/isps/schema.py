"""Every table of ISPS, gathered so that migrations and tests see one complete metadata."""

from isps.access import models as access_models  # noqa: F401
from isps.db import Base
from isps.registry import models as registry_models  # noqa: F401
from isps.synth import models as synth_models  # noqa: F401
from isps.targeting import models as targeting_models  # noqa: F401
from isps.targeting.eligibility import models as eligibility_models  # noqa: F401
from isps.targeting import vulnerability_models  # noqa: F401
from isps.targeting import alternative_models  # noqa: F401
from isps.programs import models as programs_models  # noqa: F401
from isps.payments import models as payments_models  # noqa: F401
from isps.interop import models as interop_models  # noqa: F401
from isps.interop.dci import models as dci_models  # noqa: F401
from isps.linkage import models as linkage_models  # noqa: F401
from isps.labour import models as labour_models  # noqa: F401
from isps.services import leases as lease_models  # noqa: F401
from isps.citizen import signin as citizen_signin_models  # noqa: F401
from isps.messaging import models as messaging_models  # noqa: F401
from isps.citizen.grievances import models as grievance_models  # noqa: F401

metadata = Base.metadata
from isps.citizen.applications import models as application_models  # noqa: F401
from isps.fieldwork import models as fieldwork_models  # noqa: F401
from isps.monitoring import models as monitoring_models  # noqa: F401
